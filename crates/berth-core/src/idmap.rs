//! Allocation of CTIDs and of per-container host ID ranges.

use crate::config::{IdMap, IDMAP_SIZE};
use crate::validate::{CtId, FIRST_AUTO_CTID, MAX_CTID};
use crate::{CoreError, Result};

/// The lowest free host ID range of [`IDMAP_SIZE`] IDs at or above `start`, aligned to the
/// range size from `start`, that overlaps none of `used`.
pub fn allocate_idmap(start: u32, used: &[IdMap]) -> Result<IdMap> {
    let mut base = start as u64;
    while base + IDMAP_SIZE as u64 <= u32::MAX as u64 {
        let cand = IdMap {
            host_base: base as u32,
            size: IDMAP_SIZE,
        };
        if !used.iter().any(|u| u.overlaps(&cand)) {
            return Ok(cand);
        }
        base += IDMAP_SIZE as u64;
    }
    Err(CoreError::IdRangeExhausted)
}

/// The lowest CTID >= 100 not in `used`.
pub fn next_free_ctid(used: &[CtId]) -> Result<CtId> {
    let mut ids: Vec<u32> = used.iter().map(|c| c.0).collect();
    ids.sort_unstable();
    let mut cand = FIRST_AUTO_CTID;
    for id in ids {
        if id < cand {
            continue;
        }
        if id == cand {
            cand += 1;
        } else {
            break;
        }
    }
    if cand > MAX_CTID {
        return Err(CoreError::CtIdExhausted);
    }
    Ok(CtId(cand))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idmaps_never_overlap() {
        let mut used = vec![];
        for _ in 0..5 {
            let m = allocate_idmap(165536, &used).unwrap();
            assert!(used.iter().all(|u: &IdMap| !u.overlaps(&m)));
            used.push(m);
        }
        assert_eq!(used[0].host_base, 165536);
        assert_eq!(used[1].host_base, 165536 + 65536);
        // a freed hole is reused
        used.remove(1);
        assert_eq!(
            allocate_idmap(165536, &used).unwrap().host_base,
            165536 + 65536
        );
        // an odd, unaligned range in the way is skipped
        let odd = [IdMap {
            host_base: 170000,
            size: 10,
        }];
        assert_eq!(
            allocate_idmap(165536, &odd).unwrap().host_base,
            165536 + 65536
        );
    }

    #[test]
    fn ctids_from_100() {
        assert_eq!(next_free_ctid(&[]).unwrap(), CtId(100));
        assert_eq!(
            next_free_ctid(&[CtId(5), CtId(100), CtId(101), CtId(103)]).unwrap(),
            CtId(102)
        );
    }
}
