//! Small text helpers shared by the modules: random tokens, quoting for SQL, URLs and shells.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Hex string of `bytes` random bytes (passwords, admin tokens, directory names).
pub fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let byte: u8 = rand::random();
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Everything but RFC 3986 "unreserved" characters (letters, digits, `-._~`): escaped, that is
/// always safe inside the user-info and query parts of a URL.
const NOT_UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes `raw` for the user-info or query part of a URL.
pub fn percent_encode(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, NOT_UNRESERVED).to_string()
}

/// Quotes `raw` for a POSIX shell so a printed command line can be pasted as is.
pub fn shell_quote(raw: &str) -> String {
    let plain = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain { raw.to_owned() } else { format!("'{}'", raw.replace('\'', r"'\''")) }
}

/// The last `lines` lines of a log file, for error messages; never fails (a missing log is
/// itself worth reporting, so it becomes the message).
pub fn log_tail(path: &Path, lines: usize) -> String {
    // Only the end of a long log matters, so read at most the last 32 KiB.
    const MAX_BYTES: u64 = 32 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            let tail = all[start..].join("\n");
            if tail.trim().is_empty() { format!("({} is empty)", path.display()) } else { tail }
        }
        Err(err) => format!("(could not read {}: {err})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_has_two_digits_per_byte() {
        let token = random_hex(16);
        assert_eq!(token.len(), 32);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(token, random_hex(16));
    }

    #[test]
    fn percent_encode_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(percent_encode("inventory-secret"), "inventory-secret");
        assert_eq!(percent_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_others() {
        assert_eq!(shell_quote("PORT=8081"), "PORT=8081");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
