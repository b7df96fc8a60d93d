//! Derived state beside the log (`DerivedStore`): named blobs in the store's `derived/`
//! directory, each replaced atomically (written beside, synced, renamed over, the directory
//! synced), so a crash leaves the old blob or the new one. The log never depends on them.

use std::path::{Path, PathBuf};

use rapport_core::{ReadError, StorageError};

use crate::blob::{DERIVED_DIR, write_blob};
use crate::store::FileStore;
use crate::vfs::{Vfs, read_exact_at};

fn io<'p>(operation: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> StorageError + 'p {
    move |e| StorageError::new(operation, format!("{}: {e}", path.display()))
}

impl FileStore {
    fn derived_path(&self, name: &str, ext: &str) -> PathBuf {
        self.shared.dir.join(DERIVED_DIR).join(format!("{name}.{ext}"))
    }

    pub(crate) fn save_derived_now(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        rapport_core::store::check_derived(name, bytes.len())?;
        if name == crate::snapshot::NAME {
            return Err(StorageError::new("save derived state", format!("{name:?} is the store's own index snapshot")));
        }
        if name.starts_with(crate::id_file::PREFIX) {
            return Err(StorageError::new(
                "save derived state",
                format!("names starting {:?} are the store's own id files", crate::id_file::PREFIX),
            ));
        }
        if self.is_read_only() {
            return Err(StorageError::new("save derived state", "the store is open read-only"));
        }
        self.check_poison("save derived state")?;
        write_blob(&*self.shared.vfs, &self.shared.dir, name, bytes)
    }

    pub(crate) fn load_derived_now(&self, name: &str) -> Result<Option<Vec<u8>>, ReadError> {
        if !rapport_core::store::derived_name_ok(name) {
            return Err(ReadError::Storage(StorageError::new("load derived state", "not a derived blob's name")));
        }
        let vfs: &dyn Vfs = &*self.shared.vfs;
        let path = self.derived_path(name, "bin");
        if !vfs.exists(&path) {
            return Ok(None);
        }
        let f = vfs.open_read(&path).map_err(io("open a derived blob", &path))?;
        let len = f.size().map_err(io("stat a derived blob", &path))?;
        if len > rapport_core::store::DERIVED_BYTES_MAX as u64 {
            return Err(ReadError::Corrupt { location: path.display().to_string(), reason: format!("{len} bytes") });
        }
        let mut bytes = vec![0u8; len as usize];
        read_exact_at(&*f, &mut bytes, 0).map_err(io("read a derived blob", &path))?;
        Ok(Some(bytes))
    }
}
