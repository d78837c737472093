//! API token authentication (§2): header parsing and the 401 texts of old
//! and new pve-manager versions.

use super::acl::{Access, Identity};
use crate::http::Request;

/// A failed authentication: the reason phrase a new server and an old
/// server would give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub new_text: &'static str,
    pub old_text: String,
}

impl AuthFailure {
    fn no_ticket() -> Self {
        AuthFailure {
            new_text: "No ticket",
            old_text: "No ticket".into(),
        }
    }

    fn failed(old: impl Into<String>) -> Self {
        AuthFailure {
            new_text: "Authentication failed!",
            old_text: old.into(),
        }
    }

    pub fn text(&self, legacy: bool) -> String {
        if legacy {
            self.old_text.clone()
        } else {
            self.new_text.to_string()
        }
    }
}

/// Authenticate a request at virtual epoch time `now`.
pub fn authenticate(req: &Request, access: &Access, now: u64) -> Result<Identity, AuthFailure> {
    let has_ticket_cookie = req.header("cookie").is_some_and(|c| {
        c.split(';')
            .any(|p| p.trim_start().starts_with("PVEAuthCookie="))
    });
    let header = req.header("authorization").unwrap_or_default();
    if has_ticket_cookie || header.trim_start().starts_with("PVEAuthCookie=") {
        // A ticket wins over a token; the lab issues no tickets, so any
        // ticket is invalid.
        return Err(AuthFailure::failed("invalid ticket"));
    }
    let Some(value) = token_value(header) else {
        return Err(AuthFailure::no_ticket());
    };
    let value = percent_encoding::percent_decode_str(&value)
        .decode_utf8_lossy()
        .into_owned();
    let Some((tokenid, secret)) = value.rsplit_once('=') else {
        return Err(AuthFailure::failed("no tokenid specified"));
    };
    let Some((userid, name)) = split_token_id(tokenid) else {
        return Err(AuthFailure::failed(format!(
            "'{tokenid}' is not a valid token ID - not able to split into user and token parts"
        )));
    };
    let Some(user) = access.users.get(userid) else {
        return Err(AuthFailure::failed(format!("no such user ('{userid}')")));
    };
    if !user.enabled {
        return Err(AuthFailure::failed(format!("user '{userid}' is disabled")));
    }
    if user.expire != 0 && user.expire < now {
        return Err(AuthFailure::failed(format!(
            "user '{userid}' access expired"
        )));
    }
    let Some(token) = access.tokens.get(tokenid) else {
        return Err(AuthFailure::failed(format!(
            "no such token '{name}' for user '{userid}'"
        )));
    };
    if token.expire != 0 && token.expire < now {
        return Err(AuthFailure::failed(format!(
            "token '{name}' access expired"
        )));
    }
    if token.secret != secret {
        return Err(AuthFailure::failed("invalid token value!"));
    }
    Ok(Identity::Token {
        user: userid.to_string(),
        name: name.to_string(),
        privsep: token.privsep,
    })
}

/// The value after `PVEAPIToken=` or `PVEAPIToken<spaces>`, found at the
/// start or after whitespace, cut at `;`.
fn token_value(header: &str) -> Option<String> {
    const SCHEME: &str = "PVEAPIToken";
    let mut search_from = 0;
    while let Some(pos) = header[search_from..].find(SCHEME) {
        let at = search_from + pos;
        let preceded_ok = at == 0 || header[..at].ends_with(char::is_whitespace);
        let rest = &header[at + SCHEME.len()..];
        if preceded_ok {
            let value = if let Some(v) = rest.strip_prefix('=') {
                Some(v)
            } else if rest.starts_with(char::is_whitespace) {
                Some(rest.trim_start())
            } else {
                None
            };
            if let Some(v) = value {
                let v = v.split(';').next().unwrap_or_default();
                if !v.is_empty() {
                    return Some(v.to_string());
                }
            }
        }
        search_from = at + SCHEME.len();
    }
    None
}

/// `user@realm!name` → (`user@realm`, `name`) if both parts are well-formed.
pub fn split_token_id(id: &str) -> Option<(&str, &str)> {
    let (userid, name) = id.rsplit_once('!')?;
    let (user, realm) = userid.rsplit_once('@')?;
    let user_ok =
        !user.is_empty() && !user.contains(|c: char| c.is_whitespace() || c == ':' || c == '/');
    (user_ok && ident_ok(realm) && ident_ok(name)).then_some((userid, name))
}

/// A letter followed by at least one of `[A-Za-z0-9._-]`.
fn ident_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_token_in_both_forms() {
        assert_eq!(
            token_value("PVEAPIToken=a@pve!t=s-e=c").as_deref(),
            Some("a@pve!t=s-e=c")
        );
        assert_eq!(
            token_value("PVEAPIToken a@pve!t=x;y").as_deref(),
            Some("a@pve!t=x")
        );
        assert_eq!(token_value("Bearer x").as_deref(), None);
        assert_eq!(token_value("xPVEAPIToken=a").as_deref(), None);
    }

    #[test]
    fn token_ids() {
        assert_eq!(
            split_token_id("svc@pve!daemon"),
            Some(("svc@pve", "daemon"))
        );
        assert_eq!(split_token_id("svc@pve!d"), None);
        assert_eq!(split_token_id("svcpve!daemon"), None);
    }
}
