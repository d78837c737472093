//! `GET /`: the status page, one self-contained HTML document rendered on
//! the server from the same [`StatusView`] as `/status.json`. No script at
//! all: the page reloads itself with `<meta http-equiv="refresh">`, and its
//! only style sheet is allowed by hash in a Content-Security-Policy that
//! forbids everything else. Every text from the outside (guest names,
//! reasons, messages) goes through [`esc`].

use std::fmt::Write as _;
use std::sync::LazyLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::view::{CycleRow, StatusView};

/// Seconds between reloads of the page.
pub(crate) const REFRESH_S: u32 = 10;

const STYLE: &str = include_str!("page.css");

/// The page's Content-Security-Policy: nothing may load or run except the
/// inline style sheet whose hash it names.
pub(crate) static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; script-src 'none'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
});

/// HTML-escapes untrusted text for element content and quoted attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn opt(text: Option<&str>) -> String {
    text.map_or_else(|| "—".to_owned(), esc)
}

/// The whole page.
pub(crate) fn render(v: &StatusView) -> String {
    let mut h = String::with_capacity(16 * 1024);
    head(&mut h, v);
    summary(&mut h, v);
    timeline(&mut h, &v.history);
    clusters(&mut h, v);
    pending(&mut h, v);
    block_errors(&mut h, v);
    power_ups(&mut h, v);
    audit(&mut h, v);
    let _ = write!(
        h,
        "<footer>Read-only view; refreshes every {REFRESH_S} s. The same data as JSON: \
         <a href=\"status.json\">status.json</a>. Generated {}.</footer></main></body></html>",
        esc(&v.generated_at)
    );
    h.push('\n');
    h
}

fn head(h: &mut String, v: &StatusView) {
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>pve-guac-sync: {state}</title><style>{STYLE}</style></head><body><main>\
         <header><h1>pve-guac-sync</h1>\
         <p id=\"state\" class=\"state {state}\"><span class=\"word\">{state}</span>",
        state = v.state
    );
    if !v.reason.is_empty() {
        let _ = write!(h, " <span id=\"reason\">{}</span>", esc(&v.reason));
    }
    h.push_str("</p><p class=\"meta\">");
    let _ = write!(
        h,
        "started {} · {} cycle(s) · interval {} s",
        esc(&v.started_at),
        v.cycles,
        v.interval_s
    );
    if v.dry_run {
        h.push_str(" · <span class=\"tag dry\">dry run</span>");
    }
    h.push_str("</p></header>");
}

fn summary(h: &mut String, v: &StatusView) {
    let last_success = v
        .last_success
        .as_ref()
        .map_or_else(|| "never".to_owned(), |m| format!("{} s ago", m.age_s));
    let b = &v.budget;
    let budget = format!(
        "{} of {} per cycle{}",
        b.used_last_cycle,
        b.max_changes_per_cycle,
        if b.exhausted { " (used up)" } else { "" }
    );
    h.push_str("<section class=\"cards\">");
    for (id, label, value) in [
        (
            "connections",
            "managed connections",
            v.managed.connections.to_string(),
        ),
        (
            "guests",
            "guests with connections",
            v.managed.guests.to_string(),
        ),
        ("pending-count", "changes pending", b.pending.to_string()),
        ("budget", "change budget", budget),
        ("last-success", "last clean cycle", last_success),
    ] {
        let _ = write!(
            h,
            "<div class=\"card\" id=\"{id}\"><div class=\"value\">{}</div><div class=\"label\">{label}</div></div>",
            esc(&value)
        );
    }
    h.push_str("</section>");
    if !v.reload_problems.is_empty() {
        h.push_str("<section><h2>Reload refused</h2><ul class=\"problems\">");
        for p in &v.reload_problems {
            let _ = write!(h, "<li>{}</li>", esc(p));
        }
        h.push_str("</ul></section>");
    }
}

fn timeline(h: &mut String, history: &[CycleRow]) {
    h.push_str("<section><h2>Last cycles</h2>");
    if history.is_empty() {
        h.push_str("<p class=\"none\">No cycle has finished yet.</p></section>");
        return;
    }
    // One bar per cycle, oldest left; its height grows with the duration.
    let longest = history
        .iter()
        .map(|c| c.duration_ms)
        .max()
        .unwrap_or(0)
        .max(1);
    h.push_str("<div class=\"timeline\" id=\"timeline\">");
    for c in history {
        let step = (c.duration_ms * 10).div_ceil(longest).clamp(1, 10);
        let _ = write!(
            h,
            "<span class=\"bar {} h{step}\" title=\"cycle {}: {}, {} ms, {} change(s)\"></span>",
            c.outcome, c.number, c.outcome, c.duration_ms, c.changes
        );
    }
    h.push_str("</div><table id=\"cycles\"><thead><tr><th>cycle</th><th>finished</th><th>duration</th>\
                <th>outcome</th><th>changes</th><th>pending</th><th>errors</th></tr></thead><tbody>");
    for c in history.iter().rev().take(8) {
        let outcome = match c.error {
            Some(label) => format!("{} ({})", c.outcome, esc(label)),
            None => c.outcome.to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{} <span class=\"age\">({} s ago)</span></td><td>{} ms</td>\
             <td><span class=\"tag {}\">{outcome}</span></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.number,
            esc(&c.finished.at),
            c.finished.age_s,
            c.duration_ms,
            c.outcome,
            c.changes,
            c.pending,
            c.errors
        );
    }
    h.push_str("</tbody></table></section>");
}

fn clusters(h: &mut String, v: &StatusView) {
    h.push_str(
        "<section><h2>Clusters</h2><table id=\"clusters\"><thead><tr><th>cluster</th>\
                <th>endpoints up</th><th>guests</th><th>connections</th><th>observation</th>\
                <th>last complete observation</th></tr></thead><tbody>",
    );
    for c in &v.clusters {
        let endpoints: Vec<String> = c
            .endpoints
            .iter()
            .map(|e| format!("<span class=\"ep {}\">{}</span>", e.state, esc(&e.endpoint)))
            .collect();
        let last = c.last_complete.as_ref().map_or_else(
            || "never".to_owned(),
            |m| format!("{} ({} s ago)", esc(&m.at), m.age_s),
        );
        let untried = c.endpoints.iter().filter(|e| e.state == "untried").count();
        let untried = if untried > 0 {
            format!(" ({untried} not tried yet)")
        } else {
            String::new()
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{} of {}{untried} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{last}</td></tr>",
            esc(&c.name),
            c.endpoints_up,
            c.endpoints.len(),
            endpoints.join(" "),
            c.guests,
            c.connections,
            if c.complete {
                "<span class=\"tag ok\">complete</span>"
            } else {
                "<span class=\"tag errors\">incomplete</span>"
            },
        );
    }
    h.push_str("</tbody></table></section>");
}

fn pending(h: &mut String, v: &StatusView) {
    h.push_str("<section><h2>Pending changes</h2>");
    if v.pending.is_empty() {
        h.push_str("<p class=\"none\">Nothing waits.</p>");
    } else {
        h.push_str(
            "<table id=\"pending\"><thead><tr><th>action</th><th>guest</th><th>connection</th>\
                    <th>reason</th><th>waits for</th></tr></thead><tbody>",
        );
        for p in &v.pending {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p.action),
                opt(p.guest.as_deref()),
                opt(p.connection.as_deref()),
                esc(&p.reason),
                esc(p.waits_for)
            );
        }
        h.push_str("</tbody></table>");
        more(h, v.pending_left_out);
    }
    if !v.held.is_empty() {
        h.push_str(
            "<h3>Guests whose connections are kept as they are</h3><table id=\"held\">\
                    <thead><tr><th>guest</th><th>why</th></tr></thead><tbody>",
        );
        for g in &v.held {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&g.guest),
                esc(g.reason)
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");
}

fn block_errors(h: &mut String, v: &StatusView) {
    h.push_str("<section><h2>Guests with block errors</h2>");
    if v.block_errors.is_empty() {
        h.push_str("<p class=\"none\">Every notes block reads cleanly.</p></section>");
        return;
    }
    h.push_str(
        "<table id=\"block-errors\"><thead><tr><th>guest</th><th>name</th><th>block</th>\
                <th>key</th><th>problem</th></tr></thead><tbody>",
    );
    for b in &v.block_errors {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"name\">{}</td><td>{} (line {})</td><td>{}</td>\
             <td><code>{}</code> {}</td></tr>",
            esc(&b.guest),
            esc(&b.guest_name),
            b.block,
            b.line,
            opt(b.key),
            esc(b.label),
            esc(&b.message)
        );
    }
    h.push_str("</tbody></table>");
    more(h, v.block_errors_left_out);
    h.push_str("</section>");
}

fn power_ups(h: &mut String, v: &StatusView) {
    h.push_str("<section><h2>Power-ups in flight</h2>");
    if v.power_ups_in_flight.is_empty() {
        h.push_str("<p class=\"none\">None.</p>");
    } else {
        h.push_str("<ul id=\"power-ups\">");
        for g in &v.power_ups_in_flight {
            let _ = write!(h, "<li>{}</li>", esc(g));
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>");
}

fn audit(h: &mut String, v: &StatusView) {
    h.push_str("<section><h2>Recent audit events</h2>");
    if v.audit.is_empty() {
        h.push_str("<p class=\"none\">No change has been planned yet.</p></section>");
        return;
    }
    h.push_str("<table id=\"audit\"><thead><tr><th>time</th><th>cycle</th><th>action</th>\
                <th>result</th><th>guest</th><th>connection</th><th>reason</th></tr></thead><tbody>");
    for a in &v.audit {
        let reason = match &a.error {
            Some(e) => format!("{} — <span class=\"err\">{}</span>", esc(&a.reason), esc(e)),
            None => esc(&a.reason),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><span class=\"tag r-{}\">{}</span></td>\
             <td>{}</td><td>{}</td><td>{reason}</td></tr>",
            esc(&a.at),
            a.cycle,
            esc(a.action),
            a.result,
            a.result,
            opt(a.guest.as_deref()),
            opt(a.connection.as_deref()),
        );
    }
    h.push_str("</tbody></table></section>");
}

fn more(h: &mut String, left_out: usize) {
    if left_out > 0 {
        let _ = write!(h, "<p class=\"none\">… and {left_out} more.</p>");
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::daemon::DaemonStatus;
    use crate::health::view::{BlockErrorRow, Context, build};

    fn view_with_evil_guest() -> StatusView {
        let status = DaemonStatus::new(Duration::from_secs(60), false);
        let mut v = build(Context {
            now: SystemTime::now(),
            ready: Err("no cycle has completed yet".into()),
            power_ups: vec!["lab/<b>7</b>".into()],
            status: Some(&status),
        });
        v.block_errors.push(BlockErrorRow {
            guest: "lab/150".into(),
            guest_name: "x<script>alert('1')</script>&\"".into(),
            block: 2,
            line: 3,
            key: Some("protos"),
            label: "no_known_protocol",
            message: "none of the listed protocols is known".into(),
        });
        v
    }

    #[test]
    fn untrusted_text_is_escaped_everywhere() {
        assert_eq!(
            esc("<a href='x'>\"&\u{7}</a>"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;\u{fffd}&lt;/a&gt;"
        );
        let html = render(&view_with_evil_guest());
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains(
            "<td class=\"name\">x&lt;script&gt;alert(&#39;1&#39;)&lt;/script&gt;&amp;&quot;</td>"
        ));
        assert!(html.contains("<li>lab/&lt;b&gt;7&lt;/b&gt;</li>"));
        assert!(html.contains("class=\"state starting\""), "{html}");
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_style_sheet() {
        let html = render(&view_with_evil_guest());
        let start = html.find("<style>").unwrap() + "<style>".len();
        let end = html.find("</style>").unwrap();
        let digest = Sha256::digest(&html.as_bytes()[start..end]);
        let hash = base64::engine::general_purpose::STANDARD.encode(digest);
        assert!(
            CSP.contains(&format!("style-src 'sha256-{hash}'")),
            "{}",
            *CSP
        );
        assert!(CSP.starts_with("default-src 'none';"));
        assert!(CSP.contains("script-src 'none'"));
        assert_eq!(html.matches("<style>").count(), 1);
        assert!(
            !html.contains(" style="),
            "inline style attributes would be blocked"
        );
    }
}
