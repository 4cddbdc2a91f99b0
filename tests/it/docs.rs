//! The repository stands on its own: no Markdown link in it leads outside it, and every
//! link inside it leads to a file that exists.

use std::path::{Component, Path, PathBuf};

/// Every Markdown file of the repository, outside build output and hidden directories.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a directory of the repository") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            markdown_files(&path, out);
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The prose of a Markdown text: fenced blocks and inline code spans blanked out, since
/// what they hold is shown, not linked.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if fenced {
            out.push('\n');
            continue;
        }
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
                out.push(' ');
            } else {
                out.push(if in_code { ' ' } else { c });
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of inline links and images (`[text](target)`), autolinks (`<target>`) and
/// link reference definitions (`[label]: target`), with their line numbers.
fn link_targets(prose: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    for (i, line) in prose.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = after[..end].split_whitespace().next().unwrap_or("");
            targets.push((i + 1, target.to_string()));
            rest = &after[end..];
        }
        let mut rest = line;
        while let Some(at) = rest.find('<') {
            let after = &rest[at + 1..];
            let end = after.find('>').unwrap_or(after.len());
            if after[..end].contains("://") || after[..end].starts_with("mailto:") {
                targets.push((i + 1, after[..end].to_string()));
            }
            rest = &after[end..];
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[')
            && let Some((_, target)) = trimmed.split_once("]:")
        {
            targets.push((i + 1, target.trim().to_string()));
        }
    }
    targets
}

/// Why `target`, linked from `file`, leads outside the repository at `root`, if it does.
fn outside(root: &Path, file: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") || target.starts_with("//") {
        return Some("a link to another site".into());
    }
    let path = target.split('#').next().unwrap_or("");
    if path.is_empty() {
        return None; // an anchor in the same file
    }
    let dir = file.parent().expect("a file has a directory");
    let mut resolved = if path.starts_with('/') {
        root.to_path_buf()
    } else {
        dir.to_path_buf()
    };
    for component in Path::new(path.trim_start_matches('/')).components() {
        match component {
            Component::ParentDir if !resolved.pop() || !resolved.starts_with(root) => {
                return Some("a path that leaves the repository".into());
            }
            Component::ParentDir => {}
            Component::Normal(part) => resolved.push(part),
            _ => {}
        }
    }
    if !resolved.starts_with(root) {
        return Some("a path that leaves the repository".into());
    }
    (!resolved.exists()).then(|| "a file that does not exist".into())
}

#[test]
fn no_markdown_link_leads_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    markdown_files(root, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("PROTOCOL.md")),
        "the protocol document is in the repository"
    );
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a Markdown file");
        let prose = prose(&text);
        for (line, target) in link_targets(&prose) {
            if let Some(why) = outside(root, file, &target) {
                wrong.push(format!("{}:{line}: {target} ({why})", file.display()));
            }
        }
        // Bare addresses, which renderers turn into links by themselves.
        for (i, line) in prose.lines().enumerate() {
            if line.contains("http://") || line.contains("https://") || line.contains("www.") {
                wrong.push(format!(
                    "{}:{}: an address in the text",
                    file.display(),
                    i + 1
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "links that leave the repository:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_link_check_finds_what_it_must() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = root.join("README.md");
    let text = "see [spec](../shared/SPEC.md), [site](https://example.org), <https://x.y>,\n\
                [gone](nothing-here.md), [ok](PROTOCOL.md#3-entries), [a](#anchor), \
                `[code](https://fine)`\n[ref]: http://example.org\n";
    let found: Vec<(String, Option<String>)> = link_targets(&prose(text))
        .into_iter()
        .map(|(_, t)| {
            let why = outside(root, &readme, &t);
            (t, why)
        })
        .collect();
    let flagged: Vec<&str> = found
        .iter()
        .filter(|(_, why)| why.is_some())
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(
        flagged,
        [
            "../shared/SPEC.md",
            "https://example.org",
            "https://x.y",
            "nothing-here.md",
            "http://example.org"
        ]
    );
}
