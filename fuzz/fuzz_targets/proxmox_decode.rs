//! Fuzz target: Proxmox answer bodies through the client's error mapping,
//! envelope and typed decoders. The first two bytes pick the HTTP status.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [a, b, rest @ ..] => (status(u16::from_be_bytes([*a, *b])), rest),
        _ => return,
    };
    pve_guac_sync::proxmox::fuzzing::decode_answer(status, body);
});

/// Mostly 200, else a status Proxmox or a proxy sends.
fn status(n: u16) -> u16 {
    const OTHERS: [u16; 10] = [400, 401, 403, 404, 500, 501, 502, 503, 595, 596];
    if n % 2 == 0 {
        200
    } else {
        OTHERS[usize::from(n / 2) % OTHERS.len()]
    }
}
