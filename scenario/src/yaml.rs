//! YAML with locations: every error meshsim reports about a file names its line, column and
//! the field path (`workloads[1].replicas`).
//!
//! serde-saphyr reports where a parse or type error happened but not the field path, and our
//! validation pass knows the path but not the place. A [`LocIndex`], built from the parser's
//! event stream, maps one to the other in both directions.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::granit_parser::{Event, Parser};

/// One problem in one file, at one place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no place in the file (e.g. it cannot be read).
    pub line: usize,
    /// 1-based.
    pub column: usize,
    /// The field path, e.g. `workloads[1].replicas`; empty for the whole document.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
    }
}

/// Line and column, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Loc {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    path: String,
    /// Where the key of a mapping entry is (for "unknown field" and "missing" errors).
    key: Option<Loc>,
    /// Where the value starts.
    value: Loc,
}

/// Field paths of a YAML document and where each one is written.
#[derive(Debug, Clone, Default)]
pub struct LocIndex {
    /// In document order.
    entries: Vec<Entry>,
    /// Added to every line: the document's first line in its file, minus one.
    line_offset: usize,
}

enum Frame {
    Map {
        path: String,
        pending_key: Option<(String, Loc)>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

fn join_key(base: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (base.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => format!("{base}.{key}"),
        (_, false) => format!("{base}[{key:?}]"),
    }
}

impl LocIndex {
    /// Indexes `text`, a single YAML document. Parse errors are left for serde-saphyr to
    /// report; the index then simply holds what came before them.
    pub fn build(text: &str, line_offset: usize) -> LocIndex {
        let mut idx = LocIndex {
            entries: Vec::new(),
            line_offset,
        };
        let mut stack: Vec<Frame> = Vec::new();
        for ev in Parser::new_from_str(text) {
            let Ok((event, span)) = ev else { break };
            let loc = Loc {
                line: span.start.line() + line_offset,
                column: span.start.col() + 1,
            };
            // A node starts here: name its path, and if it is a key remember it instead.
            let is_node = matches!(
                event,
                Event::Scalar(..)
                    | Event::SequenceStart(..)
                    | Event::MappingStart(..)
                    | Event::Alias(_)
            );
            let mut node_path: Option<String> = None;
            if is_node {
                match stack.last_mut() {
                    None => node_path = Some(String::new()),
                    Some(Frame::Seq { path, next }) => {
                        node_path = Some(format!("{path}[{next}]"));
                        *next += 1;
                    }
                    Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                        None => {
                            // This node is a key.
                            let key = match &event {
                                Event::Scalar(v, ..) => v.to_string(),
                                _ => "?".to_string(),
                            };
                            *pending_key = Some((key, loc));
                            if !matches!(event, Event::Scalar(..)) {
                                // Complex keys are not part of any format meshsim reads; keep
                                // the stack balanced by indexing their insides under `?`.
                                let p = join_key(path, "?");
                                stack.push(match event {
                                    Event::SequenceStart(..) => Frame::Seq { path: p, next: 0 },
                                    _ => Frame::Map {
                                        path: p,
                                        pending_key: None,
                                    },
                                });
                            }
                            continue;
                        }
                        Some((key, key_loc)) => {
                            let p = join_key(path, &key);
                            idx.entries.push(Entry {
                                path: p.clone(),
                                key: Some(key_loc),
                                value: loc,
                            });
                            node_path = Some(p);
                        }
                    },
                }
            }
            match event {
                Event::MappingStart(..) => {
                    let p = node_path.unwrap_or_default();
                    if !matches!(stack.last(), Some(Frame::Map { .. })) || p.is_empty() {
                        idx.push_unkeyed(&p, loc);
                    }
                    stack.push(Frame::Map {
                        path: p,
                        pending_key: None,
                    });
                }
                Event::SequenceStart(..) => {
                    let p = node_path.unwrap_or_default();
                    if !matches!(stack.last(), Some(Frame::Map { .. })) || p.is_empty() {
                        idx.push_unkeyed(&p, loc);
                    }
                    stack.push(Frame::Seq { path: p, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::Scalar(..) | Event::Alias(_) => {
                    if let Some(p) = node_path
                        && !matches!(stack.last(), Some(Frame::Map { .. }))
                    {
                        idx.push_unkeyed(&p, loc);
                    }
                }
                _ => {}
            }
        }
        idx
    }

    fn push_unkeyed(&mut self, path: &str, loc: Loc) {
        if self.entries.iter().any(|e| e.path == path) {
            return;
        }
        self.entries.push(Entry {
            path: path.to_string(),
            key: None,
            value: loc,
        });
    }

    /// Where the value at `path` is written; falls back to the nearest written ancestor (a
    /// missing field is reported at the mapping that lacks it).
    pub fn value_loc(&self, path: &str) -> Loc {
        self.find(path)
            .map(|e| e.value)
            .unwrap_or_else(|| self.start())
    }

    /// Where the key of `path` is written (its value for sequence items and the root).
    pub fn key_loc(&self, path: &str) -> Loc {
        self.find(path)
            .map(|e| e.key.unwrap_or(e.value))
            .unwrap_or_else(|| self.start())
    }

    /// Whether the document writes `path` itself (not only an ancestor of it).
    pub fn has(&self, path: &str) -> bool {
        self.entries.iter().any(|e| e.path == path)
    }

    fn start(&self) -> Loc {
        self.entries.first().map(|e| e.value).unwrap_or(Loc {
            line: self.line_offset + 1,
            column: 1,
        })
    }

    fn find(&self, path: &str) -> Option<&Entry> {
        let mut p = path;
        loop {
            if let Some(e) = self.entries.iter().find(|e| e.path == p) {
                return Some(e);
            }
            // Strip the last segment: `a.b[2]` → `a.b` → `a`.
            let cut = p.rfind(['.', '[']).unwrap_or(0);
            if cut == 0 {
                return self.entries.iter().find(|e| e.path.is_empty());
            }
            p = &p[..cut];
        }
    }

    /// The path of the innermost field written at or just before `loc` (how a serde error's
    /// location becomes a field path).
    pub fn path_at(&self, loc: Loc) -> String {
        let mut best: Option<(&Entry, Loc)> = None;
        for e in &self.entries {
            for l in [e.key, Some(e.value)].into_iter().flatten() {
                if l <= loc && best.is_none_or(|(_, b)| l >= b) {
                    best = Some((e, l));
                }
            }
        }
        best.map(|(e, _)| e.path.clone()).unwrap_or_default()
    }
}

/// One YAML document of a (possibly multi-document) file.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    pub text: &'a str,
    /// Lines of the file before this document's first line.
    pub line_offset: usize,
}

/// Splits a multi-document YAML file at its `---` lines. A `---` at column 0 can only be a
/// document marker (block scalars are indented), so a line split is exact for manifests.
pub fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 0;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let l = line.trim_end_matches(['\n', '\r']);
        let is_marker = l == "---" || l.starts_with("--- ") || l.starts_with("---\t");
        if is_marker {
            docs.push(Document {
                text: &text[start_byte..offset],
                line_offset: start_line,
            });
            // The document proper starts on the next line (content after `--- ` is rare in
            // manifests and would be part of the document: keep it by blanking the marker).
            start_byte = offset + line.len();
            start_line = i + 1;
        }
        offset += line.len();
    }
    docs.push(Document {
        text: &text[start_byte..],
        line_offset: start_line,
    });
    // Drop documents holding nothing but comments and blank lines.
    docs.retain(|d| {
        d.text.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && t != "..."
        })
    });
    docs
}

/// Parses one document into `T`, turning a serde error into a [`Diagnostic`] with the place
/// and the field path.
pub fn parse_doc<T: DeserializeOwned>(
    file: &Path,
    doc: &Document<'_>,
    index: &LocIndex,
) -> Result<T, Diagnostic> {
    serde_saphyr::from_str::<T>(doc.text).map_err(|e| serde_diagnostic(file, doc, index, &e))
}

fn serde_diagnostic(
    file: &Path,
    doc: &Document<'_>,
    index: &LocIndex,
    e: &serde_saphyr::Error,
) -> Diagnostic {
    use serde_saphyr::MessageFormatter;
    let inner = e.without_snippet();
    let message = serde_saphyr::DefaultMessageFormatter
        .format_message(inner)
        .to_string();
    let (line, column) = match inner.location() {
        Some(l) if l.line() > 0 => (l.line() as usize + doc.line_offset, l.column() as usize),
        _ => (doc.line_offset + 1, 1),
    };
    let path = index.path_at(Loc { line, column });
    Diagnostic {
        file: file.to_path_buf(),
        line,
        column,
        path,
        message: tidy_serde_message(&message),
    }
}

/// serde's messages name Rust types and quote expectations oddly for a YAML user; keep them
/// but make the common ones read naturally.
fn tidy_serde_message(m: &str) -> String {
    let m = m.trim();
    if let Some(rest) = m.strip_prefix("unknown field ") {
        return format!("unknown field {rest}");
    }
    m.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
name: demo
workloads:
  - name: client
    replicas: 1
  - name: echo
    app:
      http: {port: 8080}
labels:
  istio.io/x: y
";

    #[test]
    fn paths_map_to_places_and_back() {
        let idx = LocIndex::build(DOC, 0);
        assert_eq!(idx.value_loc("name"), Loc { line: 1, column: 7 });
        assert_eq!(idx.key_loc("workloads[1].name"), Loc { line: 5, column: 5 });
        assert_eq!(
            idx.value_loc("workloads[1].app.http.port"),
            Loc {
                line: 7,
                column: 20
            }
        );
        assert_eq!(idx.key_loc("labels[\"istio.io/x\"]").line, 9);
        // A missing field falls back to its parent.
        assert_eq!(idx.value_loc("workloads[0].app").line, 3);
        assert_eq!(
            idx.path_at(Loc {
                line: 4,
                column: 15
            }),
            "workloads[0].replicas"
        );
    }

    #[test]
    fn splits_documents_keeping_line_numbers() {
        let text = "# header\n---\na: 1\n---\n# only a comment\n---\nb: 2\nc: 3\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line_offset, 2);
        assert_eq!(docs[1].line_offset, 6);
        let idx = LocIndex::build(docs[1].text, docs[1].line_offset);
        assert_eq!(idx.value_loc("c").line, 8);
    }
}
