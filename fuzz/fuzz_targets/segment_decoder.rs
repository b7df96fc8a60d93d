//! Fuzzes the segment decoder: any bytes must decode or give an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(seg) = rapport_store_file::format::decode_segment(data) {
        // Whatever decodes must be internally consistent.
        assert!(seg.valid_len as usize <= data.len());
        for (i, r) in seg.records.iter().enumerate() {
            assert_eq!(r.position.get(), seg.header.base_position + i as u64);
        }
    }
    // Frame headers and record splitting on their own, at every offset of a short input.
    for at in 0..data.len().min(64) {
        let _ = rapport_store_file::format::FrameHeader::decode(&data[at..]);
    }
    let _ = rapport_store_file::format::split_records(data, 3);
});
