//! Where maestro-sh keeps its own files: the observe outbox and the grant key.

use std::path::PathBuf;

use crate::env::Env;

/// Overrides the data dir (tests, sandboxes, several users sharing a HOME).
pub const DATA_DIR_VAR: &str = "MAESTRO_SH_DATA_DIR";

/// `$MAESTRO_SH_DATA_DIR`, else the platform data dir (`~/.local/share/maestro-sh` on Linux).
pub fn data_dir(env: &dyn Env) -> Option<PathBuf> {
    if let Some(dir) = env.get(DATA_DIR_VAR).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("dev", "evalops", "maestro-sh")
        .map(|d| d.data_dir().to_path_buf())
}
