//! Derived blobs on disk: the directory they live in and their atomic write (beside, synced,
//! renamed over, the directory synced), shared by `DerivedStore` (`derived.rs`) and the
//! store's own index snapshot (`snapshot.rs`).

use std::path::Path;

use rapport_core::StorageError;

use crate::vfs::Vfs;

/// The directory derived blobs live in, inside the store's directory.
pub const DERIVED_DIR: &str = "derived";

fn io<'p>(operation: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> StorageError + 'p {
    move |e| StorageError::new(operation, format!("{}: {e}", path.display()))
}

/// Writes the derived blob `name` of the store in `store_dir` atomically: beside, synced,
/// renamed over, the directory synced.
pub(crate) fn write_blob(vfs: &dyn Vfs, store_dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let dir = store_dir.join(DERIVED_DIR);
    if !vfs.exists(&dir) {
        vfs.create_dir_all(&dir).map_err(io("create the derived directory", &dir))?;
        vfs.sync_dir(store_dir).map_err(io("fsync the store directory", store_dir))?;
    }
    let tmp = dir.join(format!("{name}.tmp"));
    if vfs.exists(&tmp) {
        vfs.remove(&tmp).map_err(io("remove a stale derived blob", &tmp))?;
    }
    let mut f = vfs.open_append(&tmp, true).map_err(io("create a derived blob", &tmp))?;
    f.append(bytes).map_err(io("write a derived blob", &tmp))?;
    f.sync_data().map_err(io("fsync a derived blob", &tmp))?;
    drop(f);
    let path = dir.join(format!("{name}.bin"));
    vfs.rename(&tmp, &path).map_err(io("rename a derived blob", &path))?;
    vfs.sync_dir(&dir).map_err(io("fsync the derived directory", &dir))?;
    tracing::debug!(name, bytes = bytes.len(), "derived state saved");
    Ok(())
}
