//! Fuzzes the segment decoder and the head record: any bytes must decode or give an error,
//! never panic; a head record that decodes encodes back to the same bytes.
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
        for version in [1, 2, 3] {
            let _ = rapport_store_file::format::FrameHeader::decode(&data[at..], version);
        }
    }
    let _ = rapport_store_file::format::split_records(data, 3);
    // The head record, with its checksum set right so the fields behind it are reached: a
    // record that decodes is exactly the bytes its value encodes to.
    if data.len() == 64 || data.len() == 96 {
        let mut record = data.to_vec();
        let len = record.len();
        let crc = crc32c::crc32c(&record[..len - 4]);
        record[len - 4..].copy_from_slice(&crc.to_le_bytes());
        if let Ok(head) = rapport_store_file::HeadRecord::decode(&record) {
            assert_eq!(head.encode(), record);
        }
    }
});
