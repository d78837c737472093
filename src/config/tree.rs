//! A location-annotated view of the YAML document, independent of the schema.
//! Used to turn a deserializer error location into a key path
//! (`proxmox.clusters[0].endpoints[1]`) and to find the lines an unknown key
//! occupies so further unknown keys can be reported in the same run.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

#[derive(Debug)]
pub(crate) enum Node {
    Scalar,
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Key>, Spanned<Node>)>),
}

/// A mapping key rendered as text, whatever scalar type it was written as.
#[derive(Debug)]
pub(crate) struct Key(pub String);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // As text: a key `y` stays `y` rather than becoming a YAML 1.1 boolean.
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(Key(v.to_owned()))
    }
    fn visit_unit<E>(self) -> Result<Key, E> {
        Ok(Key("null".to_owned()))
    }
    fn visit_none<E>(self) -> Result<Key, E> {
        Ok(Key("null".to_owned()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Key, A::Error> {
        Err(de::Error::custom("a mapping key must be a scalar"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Key, A::Error> {
        Err(de::Error::custom("a mapping key must be a scalar"))
    }
}

/// One step of a key path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// Renders steps as `proxmox.clusters[0].endpoints[1]`.
pub(crate) fn render_path(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// What sits at a location in the document.
#[derive(Debug)]
pub(crate) struct Found {
    /// Path of the deepest node starting at or before the location.
    pub path: Vec<Step>,
    /// The location is exactly a mapping key (the last step of `path`).
    pub is_key: bool,
    /// Path and first line of the innermost mapping holding the location.
    pub mapping_path: Vec<Step>,
    pub mapping_line: u64,
}

fn pos(l: &Location) -> (u64, u64) {
    (l.line(), l.column())
}

/// Finds the node at `at` (line, column; 1-based), assuming block or flow
/// style in document order: in each container the last child starting at or
/// before the location holds it.
pub(crate) fn locate(root: &Spanned<Node>, at: &Location) -> Found {
    let at = pos(at);
    let mut found = Found {
        path: Vec::new(),
        is_key: false,
        mapping_path: Vec::new(),
        mapping_line: root.referenced.line(),
    };
    let mut node = root;
    loop {
        match &node.value {
            Node::Scalar => return found,
            Node::Seq(items) => {
                let Some((i, item)) = items
                    .iter()
                    .enumerate()
                    .rev()
                    .find(|(_, item)| pos(&item.referenced) <= at)
                else {
                    return found;
                };
                found.path.push(Step::Index(i));
                node = item;
            }
            Node::Map(entries) => {
                found.mapping_path = found.path.clone();
                found.mapping_line = entries
                    .first()
                    .map_or(node.referenced.line(), |(k, _)| k.referenced.line());
                let Some((key, value)) =
                    entries.iter().rev().find(|(k, _)| pos(&k.referenced) <= at)
                else {
                    return found;
                };
                found.path.push(Step::Key(key.value.0.clone()));
                if pos(&key.referenced) == at {
                    found.is_key = true;
                    return found;
                }
                if matches!(value.value, Node::Scalar) || pos(&value.referenced) > at {
                    return found;
                }
                node = value;
            }
        }
    }
}

/// Blanks out (with spaces, keeping every offset and line) a block-style
/// mapping entry whose key starts at byte `offset`: the rest of the key's
/// line and every following line indented deeper than the key. Returns false
/// for an entry inside a flow mapping (`{a: 1}`), which is left alone.
pub(crate) fn blank_entry(text: &mut String, offset: usize) -> bool {
    let bytes = text.as_bytes();
    if offset >= bytes.len() {
        return false;
    }
    let line_start = bytes[..offset]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let before = &text[line_start..offset];
    if before.contains(['{', ',', '[']) {
        return false;
    }
    // Indentation of the key: characters before it on its line (`- ` counts).
    let key_column = before.chars().count();
    let mut end = bytes[offset..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |p| offset + p);
    while end < bytes.len() {
        let next_start = end + 1;
        let next_end = bytes[next_start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |p| next_start + p);
        let line = &text[next_start..next_end];
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        if !trimmed.is_empty() && !trimmed.starts_with('#') && indent <= key_column {
            break;
        }
        end = next_end;
    }
    // Only line breaks survive inside the entry, so every line number and
    // every offset outside it stay the same.
    let mut out = bytes.to_vec();
    for b in &mut out[offset..end] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
    match String::from_utf8(out) {
        Ok(s) => {
            *text = s;
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(y: &str) -> Spanned<Node> {
        serde_saphyr::from_str(y).unwrap()
    }

    fn at(line: u32, column: u32) -> Location {
        // Build a location by parsing a value placed exactly there.
        let mut y = "\n".repeat(line as usize - 1);
        y.push_str(&" ".repeat(column as usize - 1));
        y.push('x');
        let v: Spanned<Node> = serde_saphyr::from_str(&y).unwrap();
        v.referenced
    }

    #[test]
    fn locates_keys_values_and_list_items() {
        let t = tree("a: 1\nb:\n  - x: 1\n    y: [1, 2]\n  - z\nc: {p: 1, q: 2}\n");
        let f = locate(&t, &at(4, 5));
        assert_eq!(render_path(&f.path), "b[0].y");
        assert!(f.is_key);
        let f = locate(&t, &at(4, 12));
        assert_eq!(render_path(&f.path), "b[0].y[1]");
        assert!(!f.is_key);
        let f = locate(&t, &at(5, 5));
        assert_eq!(render_path(&f.path), "b[1]");
        let f = locate(&t, &at(6, 11));
        assert_eq!(render_path(&f.path), "c.q");
        assert_eq!(render_path(&f.mapping_path), "c");
        let f = locate(&t, &at(3, 8));
        assert_eq!(render_path(&f.path), "b[0].x");
        assert_eq!(f.mapping_line, 3);
    }

    #[test]
    fn blanks_a_block_entry_and_its_children_only() {
        let mut y = "a:\n  bad:\n    - 1\n    # c\n  good: 2\nb: 3\n".to_owned();
        let offset = y.find("bad").unwrap();
        assert!(blank_entry(&mut y, offset));
        assert_eq!(y, "a:\n      \n       \n       \n  good: 2\nb: 3\n");
        let v: Spanned<Node> = serde_saphyr::from_str(&y).unwrap();
        assert!(matches!(v.value, Node::Map(ref e) if e.len() == 2));
    }

    #[test]
    fn leaves_flow_entries_alone() {
        let mut y = "a: {bad: 1, b: 2}\n".to_owned();
        let offset = y.find("bad").unwrap();
        assert!(!blank_entry(&mut y, offset));
        assert_eq!(y, "a: {bad: 1, b: 2}\n");
    }
}
