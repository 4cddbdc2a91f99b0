//! The human pages (PROTOCOL §10) on the real binary serving the demo world: every page in a
//! real browser (Debian's Chromium, headless, driven over the DevTools protocol), every
//! `<data>` figure and every chart mark checked against the JSON API, no console error
//! and no Content-Security-Policy violation, a screenshot of each page; and every page's
//! HTML parsed by html5ever without an error, accessible and small. Strings from the
//! ledger, hostile ones included, show as text and make no element.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headless_chrome::browser::tab::ResponseHandler;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions};
use scraper::{ElementRef, Html, Selector};
use serde_json::{Value, json};

use crate::http::{Server, get, new_agent};
use crate::support::{demo_dir, init_demo_ledger, log_key_file, path_str, run_ok};

/// Debian's Chromium, which `.ci/run` installs.
const CHROMIUM: &str = "/usr/bin/chromium";
/// PROTOCOL §10 asks pages to stay small; the demo world's must stay under this.
const MAX_PAGE_BYTES: usize = 300 * 1024;
const HOSTILE_NAME: &str = "<script>alert(1)</script> \"Quoted\" & <b>bold</b>";
const HOSTILE_NOTE: &str =
    "<script>document.title='x'</script> 'single' & \"double\" <b>not bold</b>";
const HOSTILE_FACILITY: &str = "ha-hostile-0099";

/// The demo world served by the real binary, with a hostile facility name and a hostile
/// response note added through the API, as an operator would.
struct Demo {
    _dir: tempfile::TempDir,
    server: Server,
    /// The facility whose finding carries the hostile note.
    noted: String,
}

fn selector(css: &str) -> Selector {
    Selector::parse(css).unwrap_or_else(|e| panic!("selector {css}: {e:?}"))
}

fn submit(server: &Server, key: &Path, kind: &str, dir: &Path, body: &Value) {
    let file = dir.join(format!("{kind}.ndjson"));
    std::fs::write(&file, format!("{body}\n")).expect("write body");
    run_ok(&[
        "submit",
        "--server",
        &server.url(""),
        "--key",
        path_str(key),
        "--kind",
        kind,
        path_str(&file),
    ]);
}

fn demo() -> Demo {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("ledger");
    init_demo_ledger(&data);
    run_ok(&[
        "append",
        "--data",
        path_str(&data),
        "--log-key",
        path_str(&log_key_file(&data)),
        path_str(&demo_dir().join("entries.ndjson")),
    ]);
    let server = Server::start(&data, &dir.path().join("server.log"));
    let agent = new_agent();
    let keys = demo_dir().join("keys");
    submit(
        &server,
        &keys.join("zhongyuan-compute.pem"),
        "facility.register",
        dir.path(),
        &json!({"facility_id": HOSTILE_FACILITY, "name": HOSTILE_NAME, "province": "Henan",
                "city": "Zhengzhou", "lat_e6": 34_700_000, "lon_e6": 113_600_000,
                "planned_it_kw": 1_000, "planned_gpus": 64, "land_parcel": "P-hostile-1",
                "announced": "2024-06-01"}),
    );
    // A finding at a Henan facility, answered by its operator with hostile text.
    let findings = get(&agent, &server.url("/v1/findings?province=Henan")).expect(200);
    let finding = &findings["findings"][0];
    let noted = finding["facility_id"]
        .as_str()
        .expect("a Henan finding")
        .to_string();
    let facility = get(&agent, &server.url(&format!("/v1/facilities/{noted}"))).expect(200);
    let operator = facility["operator"].as_str().expect("operator");
    submit(
        &server,
        &keys.join(format!("{operator}.pem")),
        "finding.response",
        dir.path(),
        &json!({"finding_id": finding["id"], "text": HOSTILE_NOTE}),
    );
    Demo {
        _dir: dir,
        server,
        noted,
    }
}

/// Every page worth a visit on the demo world.
fn page_paths(demo: &Demo) -> Vec<String> {
    let mut paths: Vec<String> = [
        "/",
        "/regions",
        "/regions/Henan",
        "/regions/Inner%20Mongolia",
        "/regions/national",
        "/findings",
        "/findings?severity=critical&province=Henan",
        "/valuation",
        "/valuation?distressed=true&tariff_minor_per_kwh=80",
    ]
    .map(String::from)
    .to_vec();
    paths.push(format!("/facilities/{}", demo.noted));
    paths.push(format!("/facilities/{HOSTILE_FACILITY}"));
    paths.push("/facilities/ha-zhengzhou-0001".into());
    paths.push("/facilities/gz-zunyi-0010".into());
    paths
}

/// Where screenshots go: under the test's own output directory.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pages");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// The JSON at a dotted path (`subsidies_disbursed.CNY`, `monthly.3.utilization_bp`).
fn at<'v>(doc: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(doc, |v, part| match v {
        Value::Array(items) => items.get(part.parse::<usize>().ok()?),
        Value::Object(fields) => fields.get(part),
        _ => None,
    })
}

/// A JSON value as a `<data value>` spells it; null is the empty value.
fn spelled(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Fetches API answers once each.
struct Api<'a> {
    server: &'a Server,
    agent: ureq::Agent,
    answers: HashMap<String, Value>,
}

impl Api<'_> {
    fn answer(&mut self, source: &str) -> &Value {
        if !self.answers.contains_key(source) {
            let doc = get(&self.agent, &self.server.url(source)).expect(200);
            self.answers.insert(source.to_string(), doc);
        }
        &self.answers[source]
    }
}

/// The nearest `data-source` above an element.
fn source_of(element: ElementRef<'_>) -> Option<String> {
    element
        .ancestors()
        .filter_map(ElementRef::wrap)
        .find_map(|e| e.value().attr("data-source").map(str::to_string))
}

/// Every `<data data-field>` equals the API's value; returns how many were checked.
fn check_figures(page: &str, dom: &Html, api: &mut Api<'_>) -> usize {
    let mut checked = 0;
    for data in dom.select(&selector("data[data-field]")) {
        let field = data.value().attr("data-field").expect("data-field");
        let value = data.value().attr("value").expect("a <data> has a value");
        let source = source_of(data)
            .unwrap_or_else(|| panic!("{page}: <data data-field={field}> has no data-source"));
        let doc = api.answer(&source);
        let want =
            at(doc, field).unwrap_or_else(|| panic!("{page}: {source} has no field {field}"));
        assert_eq!(value, spelled(want), "{page}: {field} of {source}");
        checked += 1;
    }
    checked
}

/// Every chart: an `<svg>` with a `<title>`, whose marks each equal the API's figure for
/// their key, and which draws a mark for every key the API has a figure for.
fn check_charts(page: &str, dom: &Html, api: &mut Api<'_>) -> usize {
    let mut charts = 0;
    for svg in dom.select(&selector("svg")) {
        charts += 1;
        let title = svg
            .select(&selector("svg > title"))
            .next()
            .map(|t| t.text().collect::<String>())
            .unwrap_or_default();
        assert!(!title.trim().is_empty(), "{page}: a chart without a title");
        let attr = |name: &str| {
            svg.value()
                .attr(name)
                .unwrap_or_else(|| panic!("{page}: chart {title:?} has no {name}"))
                .to_string()
        };
        let keys: Vec<String> = serde_json::from_str(&attr("data-keys"))
            .unwrap_or_else(|e| panic!("{page}: {title}: data-keys is not a JSON list: {e}"));
        let (source, list, key_field) = (
            attr("data-source"),
            attr("data-list"),
            attr("data-key-field"),
        );
        let doc = api.answer(&source).clone();
        let items: HashMap<String, &Value> = at(&doc, &list)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{page}: {source} has no list {list}"))
            .iter()
            .map(|item| (spelled(&item[key_field.as_str()]), item))
            .collect();
        let mut drawn: HashMap<&str, usize> = HashMap::new();
        let mut lines = false;
        for series in svg.select(&selector("g[data-field]")) {
            let field = series.value().attr("data-field").expect("data-field");
            for mark in series.select(&selector("[data-key]")) {
                lines |= mark.value().name() == "circle";
                let key = mark.value().attr("data-key").expect("data-key");
                let value = mark.value().attr("data-value").expect("data-value");
                assert!(
                    keys.iter().any(|k| k == key),
                    "{page}: {title}: {key} not among its keys"
                );
                let item = items.get(key).unwrap_or_else(|| {
                    panic!("{page}: {title}: no {list} item has {key_field} {key}")
                });
                let want = at(item, field).map(spelled).unwrap_or_default();
                assert_eq!(value, want, "{page}: {title}: {field} at {key}");
                *drawn.entry(key).or_default() += 1;
            }
        }
        // Every key the API has a figure for is drawn.
        let fields: Vec<String> = svg
            .select(&selector("g[data-field]"))
            .filter_map(|g| g.value().attr("data-field").map(String::from))
            .collect();
        for key in &keys {
            let has_figure = items.get(key).is_some_and(|item| {
                fields
                    .iter()
                    .any(|f| at(item, f).is_some_and(|v| !v.is_null()))
            });
            assert_eq!(
                has_figure,
                drawn.contains_key(key.as_str()),
                "{page}: {title}: key {key}"
            );
        }
        if lines && !keys.is_empty() {
            assert!(
                title.contains(&keys[0]) && title.contains(&keys[keys.len() - 1]),
                "{page}: the title {title:?} names the months it draws"
            );
        }
    }
    charts
}

/// html5ever finds no error; `lang`, a `<title>`, headings in order, `<th scope>`.
fn check_structure(page: &str, html: &str) {
    assert!(
        html.len() < MAX_PAGE_BYTES,
        "{page} is {} bytes",
        html.len()
    );
    let dom = Html::parse_document(html);
    assert!(
        dom.errors.is_empty(),
        "{page}: html5ever errors {:?}",
        dom.errors
    );
    let root = dom.root_element();
    assert!(
        root.value().attr("lang").is_some_and(|l| !l.is_empty()),
        "{page}: no lang"
    );
    let title: String = dom
        .select(&selector("head > title"))
        .flat_map(|t| t.text())
        .collect();
    assert!(!title.trim().is_empty(), "{page}: no <title>");
    let mut last = 0;
    for h in dom.select(&selector("h1, h2, h3, h4, h5, h6")) {
        let level: usize = h.value().name()[1..].parse().expect("heading level");
        assert!(
            level <= last + 1,
            "{page}: <{}> after <h{last}>",
            h.value().name()
        );
        last = level;
    }
    assert!(last > 0, "{page}: no heading");
    for th in dom.select(&selector("th")) {
        assert!(
            th.value().attr("scope").is_some(),
            "{page}: a <th> without scope"
        );
    }
}

#[test]
fn pages_are_valid_accessible_small_and_escape_what_the_ledger_says() {
    let demo = demo();
    let agent = new_agent();
    for path in page_paths(&demo) {
        let answer = get(&agent, &demo.server.url(&path));
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        assert_eq!(answer.content_type, "text/html; charset=utf-8", "{path}");
        check_structure(&path, &answer.text);
    }
    // The hostile strings are text: escaped in the source, never an element.
    for (path, hostile) in [
        (format!("/facilities/{HOSTILE_FACILITY}"), HOSTILE_NAME),
        (format!("/facilities/{}", demo.noted), HOSTILE_NOTE),
    ] {
        let html = get(&agent, &demo.server.url(&path)).text;
        let dom = Html::parse_document(&html);
        assert!(
            dom.select(&selector("script, b")).next().is_none(),
            "{path}: an element came from ledger text"
        );
        let text: String = dom.root_element().text().collect();
        assert!(text.contains(hostile), "{path} shows the text as written");
    }
    // Unknown things are pages too, with the API's status.
    for (path, status) in [
        ("/facilities/no-such-site", 404),
        ("/regions/Atlantis", 404),
        ("/findings?rule=made-up", 400),
    ] {
        let answer = get(&agent, &demo.server.url(path));
        assert_eq!(answer.status, status, "{path}");
        check_structure(path, &answer.text);
    }
}

#[test]
fn every_page_in_a_real_browser_agrees_with_the_api() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (.ci/run does)"
    );
    let demo = demo();
    let profile = tempfile::tempdir().expect("profile dir");
    let options = LaunchOptions::default_builder()
        .path(Some(PathBuf::from(CHROMIUM)))
        .headless(true)
        .sandbox(false)
        .user_data_dir(Some(profile.path().to_path_buf()))
        .idle_browser_timeout(Duration::from_secs(120))
        .args(
            [
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ]
            .iter()
            .map(std::ffi::OsStr::new)
            .collect(),
        )
        .window_size(Some((1280, 1800)))
        .build()
        .expect("launch options");
    let browser = Browser::new(options).expect("start chromium");
    let shots = screenshot_dir();
    let mut api = Api {
        server: &demo.server,
        agent: new_agent(),
        answers: HashMap::new(),
    };
    let (mut figures, mut charts) = (0, 0);
    for path in page_paths(&demo) {
        let tab = browser.new_tab().expect("tab");
        let console: Arc<Mutex<Vec<String>>> = Arc::default();
        let statuses: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
        let heard = Arc::clone(&console);
        tab.enable_log()
            .expect("log")
            .enable_runtime()
            .expect("runtime");
        tab.add_event_listener(Arc::new(move |event: &Event| {
            let line = match event {
                Event::LogEntryAdded(e) => Some(format!(
                    "{:?} {:?}: {}",
                    e.params.entry.level, e.params.entry.source, e.params.entry.text
                )),
                Event::RuntimeConsoleAPICalled(e) => Some(format!("console {:?}", e.params.Type)),
                Event::RuntimeExceptionThrown(e) => {
                    Some(format!("exception {:?}", e.params.exception_details.text))
                }
                _ => None,
            };
            if let Some(line) = line {
                heard.lock().expect("console").push(line);
            }
        }))
        .expect("listener");
        let seen = Arc::clone(&statuses);
        let handler: ResponseHandler = Box::new(move |params, _body| {
            seen.lock()
                .expect("statuses")
                .push((params.response.url.clone(), params.response.status as i64));
        });
        tab.register_response_handling("statuses", handler)
            .expect("responses");
        let url = demo.server.url(&path);
        tab.navigate_to(&url)
            .expect("navigate")
            .wait_until_navigated()
            .expect("loaded");
        let html = tab.get_content().expect("the rendered DOM");
        let png = tab
            .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
            .expect("screenshot");
        let name = path
            .trim_start_matches('/')
            .replace(['/', '?', '&', '=', '%'], "_");
        std::fs::write(
            shots.join(format!(
                "{}.png",
                if name.is_empty() { "index" } else { &name }
            )),
            png,
        )
        .expect("write screenshot");
        // Every response the page made (the page, its stylesheet) was a 200.
        let statuses = statuses.lock().expect("statuses").clone();
        assert!(
            statuses.iter().any(|(u, _)| *u == url),
            "{path}: no response seen for the page"
        );
        for (u, status) in &statuses {
            assert_eq!(*status, 200, "{path}: {u}");
        }
        // No console error, no Content-Security-Policy violation, no script at all.
        std::thread::sleep(Duration::from_millis(100));
        let console = console.lock().expect("console").clone();
        assert!(console.is_empty(), "{path}: the console says {console:?}");
        let dom = Html::parse_document(&html);
        figures += check_figures(&path, &dom, &mut api);
        charts += check_charts(&path, &dom, &mut api);
        tab.close(true).expect("close tab");
    }
    assert!(figures > 500, "only {figures} figures checked");
    assert!(charts >= 10, "only {charts} charts checked");
}
