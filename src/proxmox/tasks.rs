//! UPIDs (`UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:`).

use std::fmt;
use std::str::FromStr;

/// A parsed task id. Keeps the original text for requests.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    text: String,
    pub node: String,
    pub kind: String,
    pub id: String,
    pub user: String,
}

impl Upid {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Upid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not a UPID: '{s}'");
        let fields: Vec<&str> = s.split(':').collect();
        // 9 fields, the last empty (trailing colon). A token user id has no
        // colon, so the split is exact.
        if fields.len() != 9 || fields[0] != "UPID" || !fields[8].is_empty() {
            return Err(bad());
        }
        let node = fields[1];
        if node.is_empty() || !node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad());
        }
        for hex in &fields[2..5] {
            if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
        }
        Ok(Upid {
            text: s.to_string(),
            node: node.to_string(),
            kind: fields[5].to_string(),
            id: fields[6].to_string(),
            user: fields[7].to_string(),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upid({})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_upid() {
        let u: Upid = "UPID:pve1:0001E240:01A2B3C4:67A1B2C3:qmstart:100:svc@pve!daemon:"
            .parse()
            .unwrap();
        assert_eq!(u.node, "pve1");
        assert_eq!(u.kind, "qmstart");
        assert_eq!(u.id, "100");
        assert_eq!(u.user, "svc@pve!daemon");
        assert_eq!(
            u.to_string(),
            "UPID:pve1:0001E240:01A2B3C4:67A1B2C3:qmstart:100:svc@pve!daemon:"
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "UPID:pve1:0001E240:01A2B3C4:67A1B2C3:qmstart:100:svc@pve!daemon",
            "UPID:pve1:XYZ:01A2B3C4:67A1B2C3:qmstart:100:u@pve:",
            "UPID:pve 1:0001E240:01A2B3C4:67A1B2C3:qmstart:100:u@pve:",
            "TASK:pve1:0001E240:01A2B3C4:67A1B2C3:qmstart:100:u@pve:",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "{bad}");
        }
        // Empty id (non-guest tasks) is fine.
        assert!(
            "UPID:pve1:1:2:3:aptupdate::root@pam:"
                .parse::<Upid>()
                .is_ok()
        );
    }
}
