//! One finding about the configuration file, rendered as
//! `FILE:LINE: key.path: what was expected`.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line, when the finding belongs to one place in the file.
    pub line: Option<u64>,
    /// Key path such as `proxmox.clusters[0].endpoints[1]`; empty for the
    /// file as a whole.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The closest candidate to a misspelt name, if it is close enough to be a
/// plausible typo.
pub(crate) fn did_you_mean<'a>(wrong: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let wrong = wrong.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&wrong, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_only_near_misses() {
        let keys = ["ca_file", "fingerprint_sha256", "insecure"];
        assert_eq!(did_you_mean("insecur", &keys), Some("insecure"));
        assert_eq!(did_you_mean("fingerprint", &keys), None);
        assert_eq!(
            did_you_mean("fingerprint_sha265", &keys),
            Some("fingerprint_sha256")
        );
        assert_eq!(did_you_mean("colour", &keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn renders_file_line_key_and_message() {
        let p = Problem {
            file: "config.yaml".into(),
            line: Some(14),
            key: "proxmox.clusters[0].endpoints[1]".into(),
            message: "expected an https URL".into(),
        };
        assert_eq!(
            p.to_string(),
            "config.yaml:14: proxmox.clusters[0].endpoints[1]: expected an https URL"
        );
    }
}
