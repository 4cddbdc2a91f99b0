//! The README is a script: every `sh` block runs, in order, in one shell, from the root
//! of a fresh copy of the repository, and a block that fails fails the test. Blocks that
//! show output are `text`; a fence without a language, or with another shell's name,
//! is refused, so no block of commands can escape the run.

use std::path::{Path, PathBuf};
use std::process::Command;

const README: &str = include_str!("../../README.md");

/// The languages a README fence may name: `sh` runs, the others are shown.
const LANGUAGES: &[&str] = &["sh", "text", "toml", "json"];

/// The README's fenced blocks: (line of the opening fence, language, text).
fn blocks(readme: &str) -> Vec<(usize, String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(language)) => {
                open = Some((i + 1, language.trim().to_string(), String::new()))
            }
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some((_, _, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a fence is never closed");
    blocks
}

#[test]
fn every_fence_names_a_language_and_commands_are_sh() {
    for (line, language, _) in blocks(README) {
        assert!(
            LANGUAGES.contains(&language.as_str()),
            "README.md:{line}: a fence of {language:?}; commands are `sh` (and run), output `text`"
        );
    }
}

/// The README runs under `set -o pipefail`, and a command that writes into a pipe whose
/// reader has stopped fails: `curl … | head -c 400` fails whenever `curl` is still
/// writing when `head` has read enough (CI saw it once in some forty runs). Commands
/// that show the start of an output write it to a file first.
#[test]
fn no_command_pipes_into_head() {
    for (line, language, text) in blocks(README) {
        if language != "sh" {
            continue;
        }
        for (i, command) in text.lines().enumerate() {
            let piped_into_head = command
                .split('|')
                .skip(1)
                .any(|stage| stage.trim_start().starts_with("head"));
            assert!(
                !piped_into_head,
                "README.md:{}: `{command}` pipes into `head`, which fails the writer under \
                 pipefail when it stops reading early; write to a file, then `head` it",
                line + 1 + i
            );
        }
    }
}

/// The target directory of this build: the test binary is `<target>/debug/deps/it-…`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary lies under <target>/<profile>/deps")
        .to_path_buf()
}

/// The repository's tracked files, copied: what a fresh clone holds (uncommitted edits
/// included, so the test runs the README as it is).
fn fresh_copy(to: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .expect("git lists the repository's files");
    assert!(listed.status.success(), "git ls-files failed");
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).expect("a UTF-8 file name");
        let from = root.join(name);
        if !from.is_file() {
            continue; // listed but deleted in the working tree
        }
        let dest = to.join(name);
        std::fs::create_dir_all(dest.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(&from, &dest).unwrap_or_else(|e| panic!("copy {name}: {e}"));
    }
}

#[test]
#[ignore = "runs the whole README, servers and all (minutes); CI runs it with the other ignored tests"]
fn the_readme_runs_block_by_block_in_a_fresh_clone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clone = tmp.path().join("dcledger");
    fresh_copy(&clone);
    // One shell for all blocks, as a reader would type them; each block announces itself
    // on stderr, so a failure names it. Whatever a block left running is stopped at the end.
    let mut script = String::from(
        "set -euo pipefail\ntrap 'jobs -p | xargs -r kill 2>/dev/null || true' EXIT\n",
    );
    let mut count = 0;
    for (line, language, text) in blocks(README) {
        if language == "sh" {
            count += 1;
            script.push_str(&format!("echo '>>> README.md:{line}' >&2\n{text}"));
        }
    }
    assert!(count > 10, "the README has {count} sh blocks");
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&clone)
        // The build's own target directory: the README's `cargo build` reuses
        // what CI built, rather than building the project a second time from nothing.
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed_in = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with(">>> README.md:"))
        .unwrap_or("before the first block");
    assert!(
        out.status.success(),
        "the README failed in the block at {}\n--- stdout\n{}\n--- stderr (end)\n{}",
        failed_in.trim_start_matches(">>> "),
        String::from_utf8_lossy(&out.stdout),
        stderr
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
