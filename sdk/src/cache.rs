//! The local cache file: the last known state, written atomically.

use std::io::Write;
use std::path::Path;

use crate::state::State;

/// Writes the state to `path` atomically: a temporary file in the same
/// directory, flushed to disk, then renamed over the old one.
pub fn write(path: &Path, state: &State) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile_in(dir, path)?;
    serde_json::to_writer(&mut tmp.1, state)?;
    tmp.1.flush()?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path)?;
    Ok(())
}

fn tempfile_in(dir: &Path, path: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("ecs-cache");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file = std::fs::File::create(&tmp)?;
    Ok((tmp, file))
}

/// Reads a cache file; `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<State>, crate::ClientError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| crate::ClientError::Cache(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::ClientError::Cache(format!(
            "{}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cache.json");
        assert_eq!(read(&path).unwrap(), None);
        let state = State::default();
        write(&path, &state).unwrap();
        assert_eq!(read(&path).unwrap(), Some(state));
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
