//! What the CLI adds to an API error: the API's message describes the fault; the cause
//! names the object, from which the CLI says which of its flags or commands helps.

use berth_api::{Cause, Error};

/// One line for `error: …`.
pub fn render(e: &anyhow::Error) -> String {
    match e.downcast_ref::<Error>() {
        Some(api) => render_api(api),
        None => e.to_string(),
    }
}

pub fn render_api(e: &Error) -> String {
    let m = &e.message;
    match e.cause.as_deref() {
        None => m.clone(),
        Some(Cause::InvalidField { field, value, why }) => {
            format!("invalid value {value:?} for --{field}: {why}")
        }
        Some(Cause::NodeNotInitialised { .. }) => format!("{m}: run `berth node init` first"),
        Some(Cause::TemplateNotFound { .. }) => format!("{m} (see `berth template list`)"),
        Some(Cause::NetworkNotFound { .. }) => format!("{m} (see `berth network list`)"),
        Some(Cause::AdapterNotFound { .. }) => format!("{m} (see `berth node adapters`)"),
        Some(Cause::ContainerRunning { .. }) => format!("{m}: stop it first, or use --force"),
        Some(Cause::ContainerSuspended { ctid }) => {
            format!("{m}: run `berth resume {ctid}` first")
        }
        Some(Cause::NeedsRestart { .. }) => format!(
            "{m}: use --setmode restart (or --setmode ignore to apply it at the next start)"
        ),
        Some(Cause::AmbiguousName { .. }) => format!(
            "{m}: name the container by its CTID, and give one of them another name with `berth set CTID --name NEW`"
        ),
        Some(Cause::TemplateInit { .. }) => format!("{m} (`berth create --init berth`)"),
        Some(Cause::Conflict {
            ctid,
            field,
            value,
            adapter,
            network,
            ..
        }) => match field.as_str() {
            "name" => format!("{m}: give one of them another name with `berth set {ctid} --name NEW`"),
            "ip" => format!(
                "{m}: remove it with `berth set {ctid} --ipdel {value}` and add a free one (`--ipadd auto`)"
            ),
            "mac" => {
                let a = adapter.as_deref().unwrap_or("ADAPTER");
                let n = network.as_deref().unwrap_or("NETWORK");
                format!(
                    "{m}: give the adapter a new MAC: `berth set {ctid} --netif-del {a}`, then `berth set {ctid} --netif-add {a} --network {n}`"
                )
            }
            _ => format!(
                "{m}: give it a free range with `berth set {ctid} --idmap auto` (while it is stopped; its files need no chown)"
            ),
        },
        Some(Cause::IdRangeTaken { ctid }) => format!(
            "{m}: give it a free range with `berth set {ctid} --idmap auto` (while it is stopped; its files need no chown)"
        ),
        Some(Cause::DiskOvercommit { .. }) => format!(
            "{m}: give a smaller --diskspace, shrink or destroy containers, or raise the ratio with `berth node set --disk-overcommit N`"
        ),
        Some(Cause::NodeSpace) => format!(
            "{m}: free space on the node filesystem, or use a smaller --diskspace (`berth node set --disk-reserve` sets the reserve)"
        ),
        Some(Cause::NoAddress { .. }) => format!("{m}: add one with --ipadd"),
        Some(Cause::InvalidFile { object, name }) => match object.as_str() {
            "container" => format!("{m} with `berth destroy {name}`"),
            "network" => format!("{m} with `berth network delete {name}`"),
            "template" => format!("{m} with `berth template remove {name}`"),
            "sample" => format!("{m} with `berth config-sample remove {name}`"),
            _ => format!("{m} (`berth node init` wrote it)"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::{ErrorKind, InputError};

    #[test]
    fn flags_come_back_in_cli_words() {
        let e: Error =
            InputError::InvalidValue("1M".into(), "--ram", "the minimum is 16M".into()).into();
        assert_eq!(
            e.message,
            "invalid value \"1M\" for ram: the minimum is 16M"
        );
        assert_eq!(
            render_api(&e),
            "invalid value \"1M\" for --ram: the minimum is 16M"
        );
        let e = Error::new(ErrorKind::Precondition, "container 101 is suspended")
            .with_cause(Cause::ContainerSuspended { ctid: 101 });
        assert_eq!(
            render(&anyhow::Error::new(e)),
            "container 101 is suspended: run `berth resume 101` first"
        );
        let e = Error::new(
            ErrorKind::Conflict,
            "container 101 cannot start: its MAC x is also container 102's",
        )
        .with_cause(Cause::Conflict {
            ctid: 101,
            other: 102,
            field: "mac".into(),
            value: "x".into(),
            adapter: Some("eth0".into()),
            network: Some("lan".into()),
        });
        assert!(render_api(&e).ends_with(
            "`berth set 101 --netif-del eth0`, then `berth set 101 --netif-add eth0 --network lan`"
        ));
        let e = Error::invalid("container 7 has no address to forward to")
            .with_cause(Cause::NoAddress { ctid: 7 });
        assert!(render_api(&e).ends_with(": add one with --ipadd"));
    }
}
