//! The whole Guacamole contract suite again, over HTTPS through the lab's
//! real listener (TLS, HTTP/1.1 framing, request log, 413 body cap) instead
//! of direct handler calls. The support module switches transport for this
//! crate; the tests and their assertions are the same.

include!("guacamole_contract.rs");

#[test]
fn this_suite_really_runs_over_https() {
    let g = Guac::default_v16();
    assert!(g.is_https());
    g.admin();
    assert_eq!(
        g.server.session_count(),
        1,
        "the lab's emulator saw the login"
    );
}
