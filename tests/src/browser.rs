//! A real headless Chromium for the console's tests: load a page, let its script run, then read
//! the DOM it rendered (`--dump-dom`) or take a screenshot. Each run has a fresh profile, its own
//! process group and a time limit, and is killed (helpers included) when it overruns.
//!
//! Chromium is found in `CHROMIUM`, else on PATH (`apt-get install chromium`; `scripts/test.sh`
//! installs it). A missing browser fails the test with that hint: it never skips silently.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::process::Command;

/// How long one Chromium run may take (it takes about 3 s here).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Page time Chromium lets pass before it dumps or shoots: the console polls every second, so
/// this is several rounds of polling, and it is virtual time (spent as fast as the page idles).
const VIRTUAL_TIME_BUDGET_MS: u32 = 5000;

/// The flags of every run: headless, no sandbox (tests run as root), nothing fetched from the
/// network behind the page's back, a fresh profile without first-run pages.
pub(crate) const HEADLESS_FLAGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// A headless Chromium binary.
#[derive(Debug, Clone)]
pub struct Chromium {
    binary: PathBuf,
}

impl Chromium {
    /// Finds Chromium, or panics saying how to install it.
    pub fn find() -> Self {
        let candidates: Vec<PathBuf> = match std::env::var_os("CHROMIUM") {
            Some(path) => vec![PathBuf::from(path)],
            None => ["chromium", "chromium-browser", "google-chrome"].iter().filter_map(|name| on_path(name)).collect(),
        };
        let binary = candidates.into_iter().find(|path| path.is_file()).unwrap_or_else(|| {
            panic!(
                "Chromium not found (CHROMIUM, or chromium on PATH): `apt-get install -y chromium` \
                 (scripts/test.sh installs it). The console tests need a real browser."
            )
        });
        Self { binary }
    }

    /// The binary found.
    pub(crate) fn binary(&self) -> &Path {
        &self.binary
    }

    /// The DOM of `url` once its script has run for the virtual time budget.
    pub async fn dump_dom(&self, url: &str) -> Dom {
        let stdout = self.run(&["--dump-dom", url]).await;
        Dom(String::from_utf8_lossy(&stdout).into_owned())
    }

    /// A screenshot of `url` at 1400×1000 in `path` (its directory is created).
    pub async fn screenshot(&self, url: &str, path: &Path) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        let _ = std::fs::remove_file(path);
        let target = format!("--screenshot={}", path.display());
        self.run(&[&target, "--window-size=1400,1000", url]).await;
        assert!(path.is_file(), "Chromium wrote no screenshot to {}", path.display());
    }

    async fn run(&self, args: &[&str]) -> Vec<u8> {
        // A fresh profile per run, removed when the run ends.
        let profile = tempfile::Builder::new().prefix("saga-chromium-").tempdir().expect("profile directory");
        let profile = profile.path();
        let budget = format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}");
        let user_data = format!("--user-data-dir={}", profile.display());
        let mut command = Command::new(&self.binary);
        command
            .args(HEADLESS_FLAGS)
            .args(["--hide-scrollbars", budget.as_str(), user_data.as_str()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so an overrun kills the renderer and GPU helpers too.
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        let pid = child.id().expect("chromium pid");
        match tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(output)) => {
                assert!(
                    output.status.success(),
                    "chromium {args:?} failed ({}):\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
                output.stdout
            }
            Ok(Err(err)) => panic!("chromium {args:?}: {err}"),
            Err(_) => {
                let _ = saga_suite::process::signal_group(pid, saga_suite::process::Signal::Kill);
                panic!("chromium {args:?} did not finish within {RUN_TIMEOUT:?}; killed");
            }
        }
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(name)).find(|path| path.is_file())
}

/// Where tests keep what a person may want to look at afterwards: `target/test-artifacts`.
pub fn artifacts_dir() -> PathBuf {
    crate::processes::target_dir().parent().map(|target| target.join("test-artifacts")).expect("target directory")
}

/// A page's DOM as Chromium serialized it, with just enough reading for assertions: its
/// elements' start tags and their attributes (the console puts what tests check in `id`s and
/// `data-` attributes).
#[derive(Debug, Clone)]
pub struct Dom(pub String);

/// One element's start tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Tag name, lower case.
    pub tag: String,
    /// Attributes, entities in values decoded.
    pub attributes: HashMap<String, String>,
}

impl Element {
    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// Whether the element has an attribute with this value.
    pub fn has(&self, name: &str, value: &str) -> bool {
        self.attr(name) == Some(value)
    }
}

impl Dom {
    /// Every element, in document order.
    pub fn elements(&self) -> Vec<Element> {
        let html = &self.0;
        let mut elements = Vec::new();
        let mut rest = html.as_str();
        while let Some(start) = rest.find('<') {
            rest = &rest[start + 1..];
            if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
                continue; // end tag, comment or doctype
            }
            let end = tag_end(rest);
            elements.push(parse_tag(&rest[..end]));
            rest = &rest[end..];
        }
        elements
    }

    /// The elements with attribute `name` equal to `value`.
    pub fn with(&self, name: &str, value: &str) -> Vec<Element> {
        self.elements().into_iter().filter(|e| e.has(name, value)).collect()
    }

    /// The element with this `id`.
    #[track_caller]
    pub fn by_id(&self, id: &str) -> Element {
        self.with("id", id).into_iter().next().unwrap_or_else(|| panic!("no element #{id} in the page:\n{}", self.0))
    }

    /// The rows (`tr`) of the table with this `id`'s body, that is those with a `data-` attribute.
    pub fn rows(&self, table_id: &str) -> Vec<Element> {
        let Some(start) = self.0.find(&format!("id=\"{table_id}\"")) else { return Vec::new() };
        let end = self.0[start..].find("</table>").map_or(self.0.len(), |e| start + e);
        Dom(self.0[start..end].to_owned())
            .elements()
            .into_iter()
            .filter(|e| e.tag == "tr" && e.attributes.keys().any(|k| k.starts_with("data-")))
            .collect()
    }
}

/// Where a start tag ends: the first `>` outside a quoted attribute value.
fn tag_end(tag: &str) -> usize {
    let mut quote = None;
    for (i, c) in tag.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return i,
            _ => {}
        }
    }
    tag.len()
}

fn parse_tag(tag: &str) -> Element {
    let name_end = tag.find(|c: char| c.is_whitespace() || c == '/').unwrap_or(tag.len());
    let mut attributes = HashMap::new();
    let mut rest = &tag[name_end..];
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            break;
        }
        let key_end = rest.find(|c: char| c.is_whitespace() || c == '=' || c == '/').unwrap_or(rest.len());
        let key = rest[..key_end].to_ascii_lowercase();
        rest = &rest[key_end..];
        let value = if let Some(after) = rest.strip_prefix('=') {
            let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
            match quote {
                Some(q) => {
                    let close = after[1..].find(q).map_or(after.len(), |i| i + 1);
                    rest = after.get(close + 1..).unwrap_or("");
                    decode(&after[1..close])
                }
                None => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    rest = &after[end..];
                    decode(&after[..end])
                }
            }
        } else {
            String::new()
        };
        attributes.insert(key, value);
    }
    Element { tag: tag[..name_end].to_ascii_lowercase(), attributes }
}

fn decode(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_tags_and_their_attributes_are_read_quotes_and_entities_included() {
        let dom = Dom(r#"<!doctype html><body data-state="ready"><table id="t"><tbody><tr data-x="a &amp; b" title="1 > 0"><td>x</td></tr><tr><td>y</td></tr></tbody></table><p hidden id='p'>"#.to_owned());
        assert_eq!(dom.by_id("p").attr("hidden"), Some(""));
        assert!(dom.with("data-state", "ready").len() == 1);
        let rows = dom.rows("t");
        assert_eq!(rows.len(), 1, "only rows with data- attributes");
        assert_eq!(rows[0].attr("data-x"), Some("a & b"));
        assert_eq!(rows[0].attr("title"), Some("1 > 0"));
    }
}
