//! Fuzzes the record-body decoders: the first byte picks the format version (1 to 4), the
//! rest is a record body (after its prefix). Any bytes must decode or give an error, never
//! panic; the scan's in-place decoder and the owned event decoder (`decode_parts`) must accept
//! exactly the same bodies and read the same event from them, one that the rules needing no
//! history accept (`check_event`); and a body that decodes encodes back to one that decodes to
//! the same event (where the format holds the event's schema version, as every read checks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rapport_core::{AccountId, Position};
use rapport_store_file::format::{check_schema_version, decode_body_with, decode_parts, encode_record, split_records};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let version = u32::from(pick % 4) + 1;
    let position = Position(7);
    let mut intern = |s: &str| AccountId::new(s).map_err(|e| e.to_string());
    let scanned = decode_body_with(body, position, version, &mut intern);
    let owned = decode_parts(body, version, &mut intern);
    // Every read checks this beside the decode (a format-1 or -2 log holds schema version 1).
    let readable = check_schema_version(body, version).is_ok();
    match (&scanned, &owned) {
        (Ok((e, _)), Ok((new, recorded_at, stream_version))) => {
            // Only what a build could have written: the rules that need no history hold.
            if let Err(why) = rapport_core::validate::check_event(new) {
                panic!("a body decodes to an event validation refuses: {why}");
            }
            assert_eq!(e.to_new_event(), *new, "the two decoders read different events");
            assert_eq!((e.recorded_at, e.stream_version), (*recorded_at, *stream_version));
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "the two decoders refuse the body differently"),
        (a, b) => panic!("one decoder accepts what the other refuses: in place {a:?}, owned {b:?}"),
    }
    // What decodes encodes back to a body that decodes to the same event.
    if let (Ok((e, sealed)), true) = (scanned, readable) {
        let mut out = Vec::new();
        encode_record(&e.to_new_event(), sealed, e.recorded_at, e.stream_version, version, &mut out)
            .expect("a decoded event encodes in its own format");
        let bodies = split_records(&out, 1).expect("the encoded record's prefix and checksum hold");
        let (back, sealed_back) =
            decode_body_with(bodies[0].1, position, version, &mut intern).expect("the encoded body decodes");
        assert_eq!(back, e, "the event changed through encoding");
        assert_eq!(sealed_back, sealed);
    }
});
