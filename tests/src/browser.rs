//! A real headless Chromium for the console's tests: load a page, wait until its script says it
//! has shown everything, then read the DOM it rendered or take a screenshot (over the DevTools
//! protocol, `devtools.rs`). Each browser has a fresh profile and its own process group, and is
//! killed (helpers included) when the test is done with it.
//!
//! Chromium is found in `CHROMIUM`, else on PATH (`apt-get install chromium`; `scripts/test.sh`
//! installs it). A missing browser fails the test with that hint: it never skips silently.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

/// How long a page may take to show everything once.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// The DOM of `url` once the page says it is ready (`<body data-state="ready">`: everything
    /// it shows has been read once).
    pub async fn dump_dom(&self, url: &str) -> Dom {
        let mut page = self.open_ready(url).await;
        Dom(page.html().await)
    }

    /// A screenshot of the whole page at `url` (1400 wide), once it is ready, in `path` (its
    /// directory is created).
    pub async fn screenshot(&self, url: &str, path: &Path) {
        let mut page = self.open_ready(url).await;
        page.screenshot(path).await;
    }

    /// `url` open in a browser of its own, once the page is ready. (The console keeps an event
    /// stream open, so Chromium's `--dump-dom` with a virtual time budget never ends: virtual
    /// time waits for open requests.)
    async fn open_ready(&self, url: &str) -> crate::Page {
        let mut page = self.open(url).await;
        page.wait_until("the page", "document.body.dataset.state === 'ready'", READY_TIMEOUT).await;
        page
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
