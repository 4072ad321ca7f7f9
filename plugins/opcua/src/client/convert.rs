//! Values between a remote server's types and the PLC's: a remote value is cast to the
//! mapping's IEC type before it is written into the PLC, and a PLC value to the remote
//! node's data type (read once per node) before it is written out.

use crate::iec::{self, IecType, TimeMapping};
use iec_values::IecValue;
use opcua::client::Session;
use opcua::types::{AttributeId, Identifier, NodeId, ReadValueId, TimestampsToReturn, Variant, VariantScalarTypeId};
use shared_abi::image::{IecAddress, Width};
use std::collections::HashMap;

fn scalar_of(ty: IecType) -> Option<VariantScalarTypeId> {
    iec::zero(ty, TimeMapping::Duration).scalar_type_id()
}

/// A remote value as the mapping's IEC type (TIME accepts Duration or Int64 milliseconds).
fn cast_to(ty: IecType, value: &Variant) -> Result<IecValue, String> {
    let (v, time) = if ty == IecType::Time && matches!(value, Variant::Int64(_)) {
        (value.clone(), TimeMapping::Int64Ms)
    } else {
        let target = scalar_of(ty).ok_or("no scalar type")?;
        match value.cast(target) {
            Variant::Empty => return Err(format!("a {:?} value cannot be a {ty}", value.scalar_type_id())),
            v => (v, TimeMapping::Duration),
        }
    };
    iec::from_variant(ty, time, &v).map_err(|e| e.to_string())
}

/// Program bytes of a remote value for a debug variable of `size` bytes.
pub fn to_var(ty: IecType, size: usize, value: &Variant) -> Result<Vec<u8>, String> {
    iec_values::encode(ty, size, &cast_to(ty, value)?).map_err(|e| e.to_string())
}

/// The image value (raw bits at the point's width) of a remote value.
pub fn to_point(ty: IecType, addr: IecAddress, value: &Variant) -> Result<u64, String> {
    let raw = iec_values::to_bits(ty, &cast_to(ty, value)?).map_err(|e| format!("{addr}: {e}"))?;
    let raw = if addr.width() == Width::Bit { (raw != 0) as u64 } else { raw };
    addr.check_value(raw).map_err(|e| format!("{addr}: {e}"))
}

/// The value of an image point read as `ty`.
pub fn from_point(ty: IecType, raw: u64) -> Option<Variant> {
    iec::to_variant(ty, TimeMapping::Duration, iec_values::from_bits(ty, raw)?)
}

/// `value` in the remote node's type, when known and reachable by a cast.
pub fn for_remote(value: &Variant, target: Option<VariantScalarTypeId>) -> Variant {
    match target.map(|t| value.cast(t)) {
        Some(Variant::Empty) | None => value.clone(),
        Some(v) => v,
    }
}

/// Remote nodes' data types, read once per connection.
#[derive(Default)]
pub struct RemoteTypes(HashMap<NodeId, Option<VariantScalarTypeId>>);

impl RemoteTypes {
    pub async fn get(&mut self, session: &Session, node: &NodeId) -> Option<VariantScalarTypeId> {
        if let Some(t) = self.0.get(node) {
            return *t;
        }
        let read = session
            .read(
                &[ReadValueId {
                    node_id: node.clone(),
                    attribute_id: AttributeId::DataType as u32,
                    ..Default::default()
                }],
                TimestampsToReturn::Neither,
                0.0,
            )
            .await;
        let t = read.ok().and_then(|r| r.into_iter().next()).and_then(|dv| match dv.value {
            Some(Variant::NodeId(id)) if id.namespace == 0 => match id.identifier {
                Identifier::Numeric(n) => builtin(n),
                _ => None,
            },
            _ => None,
        });
        self.0.insert(node.clone(), t);
        t
    }
}

fn builtin(id: u32) -> Option<VariantScalarTypeId> {
    use VariantScalarTypeId::*;
    Some(match id {
        1 => Boolean,
        2 => SByte,
        3 => Byte,
        4 => Int16,
        5 => UInt16,
        6 => Int32,
        7 => UInt32,
        8 => Int64,
        9 => UInt64,
        10 => Float,
        11 => Double,
        12 => String,
        13 | 294 => DateTime,
        290 => Double,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_values_become_plc_values() {
        assert_eq!(to_var(IecType::Int, 2, &Variant::Int32(-5)).unwrap(), (-5i16).to_le_bytes());
        assert_eq!(to_var(IecType::Real, 4, &Variant::Double(1.5)).unwrap(), 1.5f32.to_le_bytes());
        assert_eq!(to_var(IecType::Time, 8, &Variant::Int64(1500)).unwrap(), 1_500_000_000i64.to_le_bytes());
        assert!(to_var(IecType::Int, 2, &Variant::Int32(70_000)).is_err(), "out of range for INT");
        let mw = IecAddress::parse("%MD1").unwrap();
        assert_eq!(to_point(IecType::Real, mw, &Variant::Float(2.5)).unwrap(), 2.5f32.to_bits() as u64);
        let qx = IecAddress::parse("%QX0.1").unwrap();
        assert_eq!(to_point(IecType::Bool, qx, &Variant::Boolean(true)).unwrap(), 1);
        assert_eq!(from_point(IecType::Int, 0xFFFF), Some(Variant::Int16(-1)));
        assert_eq!(for_remote(&Variant::Int16(7), Some(VariantScalarTypeId::Int32)), Variant::Int32(7));
    }
}
