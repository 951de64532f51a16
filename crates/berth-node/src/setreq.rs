//! One `set` request (settings, limits and network together) as one change: both parts
//! are checked before either is applied, under one hold of the node's and the container's
//! locks, and a failure of the second undoes the first.
//!
//! Order: the network change is planned (validated, addresses allocated) and the settings
//! are checked; then the network is applied (live, with its own undo), then the settings
//! (live, with theirs); if the settings fail, the network goes back to what it was. A
//! process killed in between leaves each part whole, old or new, as its own recovery
//! (crate::netrecover, crate::recover) finishes it: the request as a whole is not atomic
//! across a crash, each part is.

use crate::local::LocalNode;
use crate::resources::SetStage;
use crate::{NodeError, Result};
use berth_api::node::{SetRequest, SetResult};
use berth_core::CtRef;

impl LocalNode {
    pub fn set_request(&self, r: &CtRef, req: SetRequest) -> Result<SetResult> {
        let mut res = SetResult::default();
        if req.renew_idmap {
            if !req.net.is_empty() || !req.options.is_empty() {
                return Err(NodeError::Invalid(
                    "a new ID range is given in a request of its own (it applies to a stopped container and cannot be undone with other changes)".into(),
                ));
            }
            res.idmap = Some(self.renew_idmap(r)?);
            return Ok(res);
        }
        let id = self.resolve(r)?;
        if req.net.is_empty() {
            res.outcome = Some(self.set_impl(&CtRef::Id(id), req.options)?);
            return Ok(res);
        }
        let (_node, id, _g) = self.lock_node_and_ct(&CtRef::Id(id))?;
        let plan = self.plan_network(id, &req.net)?;
        let with_options = !req.options.is_empty();
        if with_options {
            self.set_locked(id, req.options.clone(), SetStage::Check)?;
        }
        let old_net = self.load_config(id)?.net;
        res.net = Some(self.apply_network_locked(id, plan)?);
        if with_options {
            match self.set_locked(id, req.options, SetStage::Apply) {
                Ok(o) => res.outcome = Some(o),
                Err(e) => {
                    if let Err(undo) = self.apply_network_locked(id, old_net) {
                        tracing::error!(%id, error = %undo, "the network change of a failed set was not undone");
                    }
                    return Err(e);
                }
            }
        }
        Ok(res)
    }
}
