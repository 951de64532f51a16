//! Settings saved but not in effect yet: `set` on a running container that cannot take a
//! change live and was told to wait (`--setmode ignore`) records why in
//! `run/<ctid>/pending.json`; `status` and `list` show it until the container stops (the run
//! directory goes with the container's run, so the next start begins without it).

use berth_core::{fsutil, CtId, NodeRoot};

/// Most reasons kept (each a line), and most bytes of the file read back.
const MAX_REASONS: usize = 32;
const MAX_BYTES: u64 = 64 << 10;

fn path(root: &NodeRoot, id: CtId) -> std::path::PathBuf {
    root.ct_run_dir(id).join("pending.json")
}

/// What waits for the next start (validated like input: a list of short printable lines).
pub fn pending_settings(root: &NodeRoot, id: CtId) -> Vec<String> {
    let p = path(root, id);
    let Ok(data) =
        berth_storage::safefs::read_in_tree(&root.ct_run_dir(id), "pending.json", MAX_BYTES)
    else {
        return vec![];
    };
    match serde_json::from_slice::<Vec<String>>(&data) {
        Ok(v) => v
            .into_iter()
            .filter(|l| l.len() <= 1024 && !l.chars().any(char::is_control))
            .take(MAX_REASONS)
            .collect(),
        Err(e) => {
            tracing::warn!(path = %p.display(), "ignoring a malformed pending-settings file: {e}");
            vec![]
        }
    }
}

/// Adds `reasons` to what waits for the next start.
pub fn add_pending(root: &NodeRoot, id: CtId, reasons: &[String]) -> crate::Result<()> {
    let mut all = pending_settings(root, id);
    for r in reasons {
        if !all.contains(r) {
            all.push(r.clone());
        }
    }
    all.truncate(MAX_REASONS);
    let text = serde_json::to_vec(&all).map_err(|e| crate::NodeError::Invalid(e.to_string()))?;
    fsutil::write_runtime_file(&path(root, id), &text, 0o600)?;
    Ok(())
}
