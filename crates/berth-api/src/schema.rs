//! OpenAPI schemas (utoipa, feature `openapi`) of the wire types whose JSON is not what a
//! derive sees: the values serialised as their string form by hand (`Display` and `FromStr`:
//! CIDR, MAC, port forward, rate, address range, address spec, CPU mask), the standard
//! library's IPv4 address, which utoipa has no schema for, and the fields that are lists of
//! Rust tuples (serde writes each as an array of exactly that many items, which utoipa does
//! not bound). The derived schemas of the other wire types refer to these.

use crate::net::{AddrRange, AddrSpec, Ipv4Cidr, MacAddr, PortForward, Rate};
use crate::resources::CpuMask;
use utoipa::openapi::schema::{
    Array, ArrayBuilder, ArrayItems, KnownFormat, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::{Ref, RefOr};

/// `std::net::Ipv4Addr` as serde writes it: a string (`10.77.0.1`). Schema only: fields of
/// that type name it with `#[schema(value_type = crate::schema::Ipv4Addr)]`.
pub struct Ipv4Addr;

impl utoipa::PartialSchema for Ipv4Addr {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv4)))
            .description(Some("An IPv4 address (`10.77.0.1`)."))
            .examples(["10.77.0.1"])
            .into()
    }
}

impl utoipa::ToSchema for Ipv4Addr {}

/// The dotted quad of the patterns below (the parsers check the octets' range).
macro_rules! quad {
    () => {
        r"[0-9]{1,3}(\.[0-9]{1,3}){3}"
    };
}

/// A type serialised as a string, with what it is, the pattern its form follows and an
/// example that its parser takes.
macro_rules! string_schema {
    ($t:ty, $description:expr, $pattern:expr, $example:expr) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .pattern(Some($pattern))
                    .examples([$example])
                    .into()
            }
        }
        impl utoipa::ToSchema for $t {}
    };
}

string_schema!(
    Ipv4Cidr,
    "An IPv4 address with a prefix length (`10.77.0.5/24`); without `/N`, /32.",
    concat!("^", quad!(), "(/[0-9]{1,2})?$"),
    "10.77.0.5/24"
);
string_schema!(
    MacAddr,
    "An Ethernet MAC address, unicast and not all zero (`02:ab:cd:00:11:22`), written \
     lowercase.",
    "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$",
    "02:ab:cd:00:11:22"
);
string_schema!(
    PortForward,
    "A port forward `PROTO:HOSTPORT:CTPORT`: node port HOSTPORT to the container's CTPORT \
     (`tcp:8080:80`; `udp:53` forwards the same port), ports 1 to 65535.",
    "^(tcp|udp):[0-9]{1,5}(:[0-9]{1,5})?$",
    "tcp:8080:80"
);
string_schema!(
    Rate,
    "Bandwidth caps `IN:OUT` in bit/s with a K, M or G suffix (`10M:5M`; one value caps \
     both): IN towards the container, OUT from it, each 8K to 100G.",
    "^[0-9]+[kKmMgG](:[0-9]+[kKmMgG])?$",
    "10M:5M"
);
string_schema!(
    AddrRange,
    "An inclusive IPv4 address range `FIRST-LAST` (`10.77.0.100-10.77.0.200`).",
    concat!(r"^\s*", quad!(), r"\s*-\s*", quad!(), r"\s*$"),
    "10.77.0.100-10.77.0.200"
);
string_schema!(
    AddrSpec,
    "An address to add: `auto` (the next free one of the adapter's network) or a unicast \
     IPv4 address with an optional prefix length (`10.77.0.5/24`).",
    concat!("^(auto|", quad!(), "(/[0-9]{1,2})?)$"),
    "auto"
);
string_schema!(
    CpuMask,
    "CPU numbers and ranges, cpuset style (`0-3,6`); written sorted and compact.",
    r"^\s*[0-9]{1,4}(-[0-9]{1,4})?\s*(,\s*[0-9]{1,4}(-[0-9]{1,4})?\s*)*$",
    "0-3,6"
);

/// A JSON array of exactly these items: a Rust tuple as serde writes it.
fn tuple(items: Vec<Schema>) -> Schema {
    let n = items.len();
    ArrayBuilder::new()
        .prefix_items(items)
        .items(ArrayItems::False)
        .min_items(Some(n))
        .max_items(Some(n))
        .into()
}

fn string() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).into()
}

/// `NodeSettings::service_defaults`: `[name, startup]` pairs.
pub(crate) fn service_defaults() -> Array {
    let startup_or_null = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(Ref::from_schema_name("Startup"))
        .into();
    ArrayBuilder::new()
        .items(RefOr::T(tuple(vec![string(), startup_or_null])))
        .description(Some(
            "Default startup types of services in new containers, `[name, startup]`: a \
             `null` startup removes the name's default.",
        ))
        .build()
}

/// `ServiceStatus::details`: `[key, value]` pairs.
pub(crate) fn details() -> Array {
    ArrayBuilder::new()
        .items(RefOr::T(tuple(vec![string(), string()])))
        .description(Some(
            "What the init system says besides, `[key, value]` pairs in its order.",
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde::Serialize;
    use utoipa::ToSchema;

    /// The schema's example as its JSON (a string).
    fn example<T: ToSchema>() -> serde_json::Value {
        let s = serde_json::to_value(T::schema()).unwrap();
        s["examples"][0].clone()
    }

    /// The example of `S`'s schema is read by `T`'s deserializer and written back the same.
    fn round_trips<S: ToSchema, T: Serialize + DeserializeOwned>() {
        let ex = example::<S>();
        assert!(ex.is_string(), "{}: {ex}", S::name());
        let v: T = serde_json::from_value(ex.clone())
            .unwrap_or_else(|e| panic!("{}: example {ex} refused: {e}", S::name()));
        assert_eq!(serde_json::to_value(v).unwrap(), ex, "{}", S::name());
    }

    #[test]
    fn examples_are_what_the_types_read_and_write() {
        round_trips::<Ipv4Cidr, Ipv4Cidr>();
        round_trips::<MacAddr, MacAddr>();
        round_trips::<PortForward, PortForward>();
        round_trips::<Rate, Rate>();
        round_trips::<AddrRange, AddrRange>();
        round_trips::<AddrSpec, AddrSpec>();
        round_trips::<CpuMask, CpuMask>();
        round_trips::<Ipv4Addr, std::net::Ipv4Addr>();
    }
}
