//! Fuzz target: Guacamole answer bodies through the client's error mapping,
//! version probe, PATCH result parsing and typed decoders. The first two
//! bytes pick the HTTP status, the third the content type.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, content_type, body) = match data {
        [a, b, c, rest @ ..] => (status(u16::from_be_bytes([*a, *b])), *c, rest),
        _ => return,
    };
    pve_guac_sync::guacamole::fuzzing::decode_answer(status, content_type, body);
});

/// Mostly 200, else a status Guacamole or a proxy sends.
fn status(n: u16) -> u16 {
    const OTHERS: [u16; 9] = [204, 400, 403, 404, 405, 413, 415, 500, 502];
    if n % 2 == 0 {
        200
    } else {
        OTHERS[usize::from(n / 2) % OTHERS.len()]
    }
}
