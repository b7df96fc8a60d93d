//! The id file's write, open and lookup, exposed for the comparison bench (`benches/ids.rs`)
//! and nothing else: built only with the `redb-comparison` feature.

use std::path::Path;

use rapport_core::{EventId, Position};

use crate::id_file::{self, IdFile, IdFileRef};
use crate::vfs::StdVfs;

/// An open id file.
#[derive(Debug)]
pub struct Probe(IdFile);

/// Writes the id file of `generation` in the store directory `dir` from `old` and `recent`.
///
/// # Errors
/// As the store's own write.
pub fn write(
    dir: &Path,
    generation: u64,
    old: Option<&Probe>,
    recent: &[(EventId, Position)],
) -> Result<(u64, u64), String> {
    let at = id_file::write(&StdVfs, dir, [1; 16], generation, old.map(|p| &p.0), &mut recent.to_vec())?;
    Ok((at.generation, at.count))
}

/// Opens the id file `(generation, count)` in `dir`.
///
/// # Errors
/// As the store's own open.
pub fn open(dir: &Path, (generation, count): (u64, u64)) -> Result<Probe, String> {
    IdFile::open(&StdVfs, dir, [1; 16], IdFileRef { generation, count }).map(Probe)
}

impl Probe {
    /// Where `id` is logged, if the file holds it.
    ///
    /// # Errors
    /// As the store's own lookup.
    pub fn get(&self, id: &EventId) -> Result<Option<Position>, String> {
        self.0.get(id)
    }

    /// Bytes the open file holds in memory (block keys and filter).
    pub fn held_bytes(&self) -> usize {
        self.0.held_bytes()
    }
}
