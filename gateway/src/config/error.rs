//! Configuration errors that name the file, the line and column, the key, and what is
//! wrong (DESIGN §5), and their mapping from TOML byte spans.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration error: `FILE:LINE:COL: KEY: MESSAGE`.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file (as given on the command line, or the referenced file for I/O errors).
    pub file: PathBuf,
    /// 1-based line, when the error is at a place in the file.
    pub line: Option<usize>,
    /// 1-based column (in characters), when the error is at a place in the file.
    pub column: Option<usize>,
    /// The dotted TOML key, e.g. `connection.pool` or `gateway.listen`.
    pub key: Option<String>,
    /// What is wrong. Never contains a secret.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Maps byte spans of one TOML source to line/column and builds [`ConfigError`]s.
#[derive(Debug)]
pub(crate) struct SourceMap<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
}

impl SourceMap<'_> {
    /// 1-based (line, column) of byte offset `at` (clamped to the text).
    pub(crate) fn line_col(&self, at: usize) -> (usize, usize) {
        let at = floor_char_boundary(self.text, at.min(self.text.len()));
        let before = self.text.get(..at).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self
            .text
            .get(line_start..at)
            .map_or(0, |s| s.chars().count())
            + 1;
        (line, column)
    }

    /// An error at `span` about `key`.
    pub(crate) fn error(
        &self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = self.line_col(span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line: Some(line),
            column: Some(column),
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    /// An error from the TOML parser or from serde (unknown key, wrong type, missing
    /// key). The key is recovered from the source text around the span, and the message
    /// is replaced when the key holds a secret, so a PSK never reaches a log.
    pub(crate) fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().to_owned();
        let Some(span) = e.span() else {
            return ConfigError {
                file: self.file.to_path_buf(),
                line: None,
                column: None,
                key: None,
                message,
            };
        };
        let key = self.key_at(span.start);
        let message = match &key {
            Some(k) if is_secret_key(k) => {
                "must be a string: the key itself, or 0x followed by hex digits".to_owned()
            }
            _ => message,
        };
        let (line, column) = self.line_col(span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line: Some(line),
            column: Some(column),
            key,
            message,
        }
    }

    /// The dotted key whose line holds byte `at`: the enclosing `[table]` header plus
    /// the `key =` on that line (or on the nearest line above it, for multi-line arrays).
    fn key_at(&self, at: usize) -> Option<String> {
        let at = floor_char_boundary(self.text, at.min(self.text.len()));
        let before = self.text.get(..at)?;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = self
            .text
            .get(at..)?
            .find('\n')
            .map_or(self.text.len(), |i| at + i);
        let this_line = self.text.get(line_start..line_end)?.trim();
        if let Some(header) = table_header(this_line) {
            return Some(header);
        }
        let mut header: Option<String> = None;
        let mut key: Option<String> = None;
        // Walk the lines up to and including this one, remembering the last header and
        // the last `key =` seen after it.
        for line in self.text.get(..line_end)?.lines() {
            let t = line.trim();
            if let Some(h) = table_header(t) {
                header = Some(h);
                key = None;
            } else if let Some(k) = line_key(t) {
                key = Some(k);
            }
        }
        match (header, key) {
            (Some(h), Some(k)) => Some(format!("{h}.{k}")),
            (None, Some(k)) => Some(k),
            (Some(h), None) => Some(h),
            (None, None) => None,
        }
    }
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// `[gateway]` → `gateway`, `[[connection]]` → `connection`, `[pool.vpn]` → `pool.vpn`.
fn table_header(line: &str) -> Option<String> {
    let line = line.split('#').next().unwrap_or("").trim();
    let inner = line.strip_prefix('[')?.trim_end().strip_suffix(']')?;
    let inner = inner
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(inner);
    Some(inner.trim().replace([' ', '"'], ""))
}

/// The key of a `key = value` line (not inside a string: good enough for config keys).
fn line_key(line: &str) -> Option<String> {
    if line.starts_with('#') {
        return None;
    }
    let (k, _) = line.split_once('=')?;
    let k = k.trim().trim_matches('"');
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    ok.then(|| k.to_owned())
}

/// Keys whose values are secrets and must not be echoed in errors.
pub(crate) fn is_secret_key(key: &str) -> bool {
    key.rsplit('.').next().is_some_and(|k| k == "psk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        let m = SourceMap {
            file: Path::new("x.toml"),
            text,
        };
        assert_eq!(m.line_col(0), (1, 1));
        assert_eq!(m.line_col(6), (2, 1));
        // 'é' is two bytes: the '=' after "bé " is the 4th character.
        assert_eq!(m.line_col(10), (2, 4));
    }

    #[test]
    fn key_is_recovered_from_header_and_line() {
        let text = "[gateway]\nlisten = [\n  \"x\",\n]\n[[connection]]\nname = 1\n";
        let m = SourceMap {
            file: Path::new("x.toml"),
            text,
        };
        let at_x = text.find("\"x\"").unwrap();
        assert_eq!(m.key_at(at_x).as_deref(), Some("gateway.listen"));
        let at_name = text.find("name").unwrap();
        assert_eq!(m.key_at(at_name).as_deref(), Some("connection.name"));
        assert_eq!(
            m.key_at(text.find("[[conn").unwrap()).as_deref(),
            Some("connection")
        );
    }
}
