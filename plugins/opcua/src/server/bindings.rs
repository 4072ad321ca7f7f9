//! The configuration's nodes resolved against the running program: which debug variables
//! each node reads, at what size, and what is wrong with the ones that cannot be served.

use crate::MAX_SAMPLE_VARS;
use crate::config::{NodeDef, Permissions, VarRef};
use crate::iec::{self, IecType, TimeMapping};
use crate::plc::{DebugVars, PlcError, ProgramLayout, RawValue, Scan};
use opcua::types::{Array, DataValue, DateTime, NumericRange, StatusCode, Variant};
use std::collections::HashMap;
use std::time::Duration;

/// What a variable node serves.
#[derive(Clone, Debug)]
pub struct Binding {
    pub ty: IecType,
    /// One variable for a scalar, the elements in order for an array.
    pub vars: Vec<u32>,
    pub array: bool,
    /// Bytes per variable in the program.
    pub size: usize,
    pub permissions: Permissions,
    /// The top-level configuration node it belongs to: a structure's leaves share one and
    /// are always sampled together.
    pub unit: usize,
    /// Why the node cannot be served (it still shows, reading BadConfigurationError).
    pub problem: Option<String>,
}

impl Binding {
    /// The node's value from a sample holding its variables.
    pub fn value(&self, time: TimeMapping, values: &HashMap<u32, RawValue>) -> Result<Variant, StatusCode> {
        if self.problem.is_some() {
            return Err(StatusCode::BadConfigurationError);
        }
        let decode_one = |var: &u32| -> Result<Variant, StatusCode> {
            let raw = values.get(var).ok_or(StatusCode::BadNoData)?;
            iec::decode(self.ty, time, &raw.bytes).ok_or(StatusCode::BadDataLost)
        };
        if !self.array {
            return decode_one(&self.vars[0]);
        }
        let elements = self.vars.iter().map(decode_one).collect::<Result<Vec<_>, _>>()?;
        let scalar = iec::zero(self.ty, time).scalar_type_id().ok_or(StatusCode::BadInternalError)?;
        Array::new(scalar, elements).map(|a| Variant::Array(Box::new(a))).map_err(|_| StatusCode::BadInternalError)
    }

    /// The program bytes for each variable of a written value, or the status refusing it.
    pub fn encode(&self, time: TimeMapping, value: &Variant) -> Result<Vec<(u32, Vec<u8>)>, StatusCode> {
        if self.problem.is_some() {
            return Err(StatusCode::BadConfigurationError);
        }
        let one =
            |var: u32, v: &Variant| iec::encode(self.ty, time, self.size, v).map(|b| (var, b)).map_err(iec::status);
        if !self.array {
            return one(self.vars[0], value).map(|w| vec![w]);
        }
        let Variant::Array(array) = value else { return Err(StatusCode::BadTypeMismatch) };
        if array.values.len() != self.vars.len() {
            return Err(StatusCode::BadOutOfRange);
        }
        self.vars.iter().zip(&array.values).map(|(&var, v)| one(var, v)).collect()
    }
}

/// Every variable node by its configured node id, plus the object nodes (for building).
pub struct Resolved {
    pub bindings: HashMap<String, Binding>,
    pub warnings: Vec<String>,
}

fn flat(at: VarRef, layout: &ProgramLayout) -> Option<u32> {
    match at {
        VarRef::Flat(i) => (i < layout.var_count).then_some(i),
        VarRef::Leaf { arr, elem } => layout.flat_index(arr, elem),
    }
}

struct Pending {
    node_id: String,
    ty: IecType,
    vars: Vec<Option<u32>>,
    array: bool,
    want_size: Option<u32>,
    permissions: Permissions,
    unit: usize,
}

/// Resolves `nodes` against the running program: indices checked, sizes learnt from one
/// sample, every type checked against its variable's size.
pub async fn resolve(nodes: &[NodeDef], plc: &dyn DebugVars, timeout: Duration) -> Result<Resolved, String> {
    let layout = plc.program().filter(|p| p.program_gen != 0).ok_or("no program is loaded")?;
    let mut bindings = HashMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    fn walk(n: &NodeDef, unit: usize, layout: &ProgramLayout, out: &mut Vec<Pending>) {
        match n {
            NodeDef::Variable { node_id, ty, at, size, permissions, .. } => out.push(Pending {
                node_id: node_id.clone(),
                ty: *ty,
                vars: vec![flat(*at, layout)],
                array: false,
                want_size: *size,
                permissions: *permissions,
                unit,
            }),
            NodeDef::Array { node_id, ty, length, at, size, permissions, .. } => out.push(Pending {
                node_id: node_id.clone(),
                ty: *ty,
                vars: (0..*length).map(|k| at.offset(k).and_then(|r| flat(r, layout))).collect(),
                array: true,
                want_size: *size,
                permissions: *permissions,
                unit,
            }),
            NodeDef::Object { children, .. } => children.iter().for_each(|c| walk(c, unit, layout, out)),
        }
    }
    for (unit, n) in nodes.iter().enumerate() {
        walk(n, unit, &layout, &mut pending);
    }
    // One sample (in chunks) tells every variable's size.
    let mut all: Vec<u32> = pending.iter().flat_map(|p| p.vars.iter().flatten().copied()).collect();
    all.sort_unstable();
    all.dedup();
    let mut sizes = HashMap::new();
    for chunk in all.chunks(MAX_SAMPLE_VARS) {
        let scan = plc.sample(chunk, timeout).await.map_err(|e| format!("the PLC answered no sample: {e}"))?;
        for (var, value) in chunk.iter().zip(scan.values) {
            if let Some(v) = value {
                sizes.insert(*var, v.bytes.len());
            }
        }
    }
    let mut warnings = Vec::new();
    for Pending { node_id, ty, vars, array, want_size, permissions, unit } in pending {
        let mut problem = None;
        let mut size = 0;
        if vars.iter().any(Option::is_none) {
            problem = Some("its debug variable is not in the running program".to_string());
        } else {
            let found: Vec<usize> = vars.iter().flatten().map(|v| sizes.get(v).copied().unwrap_or(0)).collect();
            size = found[0];
            if found.iter().any(|&s| s != size || s == 0) || !ty.fits_size(size) {
                problem =
                    Some(format!("{ty:?} does not fit its variable ({} bytes)", found.iter().max().unwrap_or(&0)));
            } else if let Some(want) = want_size
                && want as usize != size
            {
                problem = Some(format!("the configuration says {want} bytes, the program has {size}"));
            }
        }
        if let Some(p) = &problem {
            warnings.push(format!("node {node_id:?}: {p}; it reads BadConfigurationError"));
        }
        let vars = vars.into_iter().map(|v| v.unwrap_or(0)).collect();
        bindings.insert(node_id, Binding { ty, vars, array, size, permissions, unit, problem });
    }
    Ok(Resolved { bindings, warnings })
}

/// Samples the variables of `nodes` (each node's variables within one scan), in as few
/// samples as fit. Returns the values by variable, and the first error.
pub async fn sample_nodes<'a>(
    plc: &dyn DebugVars,
    nodes: impl Iterator<Item = &'a Binding>,
    timeout: Duration,
    program_gen: u32,
) -> Result<HashMap<u32, RawValue>, StatusCode> {
    // Whole units (a structure's leaves) per chunk.
    let mut units: Vec<(usize, Vec<u32>)> = Vec::new();
    let mut sorted: Vec<&Binding> = nodes.filter(|b| b.problem.is_none()).collect();
    sorted.sort_by_key(|b| b.unit);
    for b in sorted {
        match units.last_mut() {
            Some((u, vars)) if *u == b.unit => vars.extend_from_slice(&b.vars),
            _ => units.push((b.unit, b.vars.clone())),
        }
    }
    let mut chunks: Vec<Vec<u32>> = vec![Vec::new()];
    for (_, vars) in units {
        let last = chunks.last().map(Vec::len).unwrap_or(0);
        if last + vars.len() > MAX_SAMPLE_VARS && last > 0 {
            chunks.push(Vec::new());
        }
        if let Some(c) = chunks.last_mut() {
            c.extend_from_slice(&vars);
        }
    }
    let mut out = HashMap::new();
    for chunk in chunks.iter_mut().filter(|c| !c.is_empty()) {
        chunk.sort_unstable();
        chunk.dedup();
        for part in chunk.chunks(MAX_SAMPLE_VARS) {
            let scan: Scan = plc.sample(part, timeout).await.map_err(|e| match e {
                PlcError::Timeout => StatusCode::BadTimeout,
                _ => StatusCode::BadNoCommunication,
            })?;
            if scan.program_gen != program_gen {
                return Err(StatusCode::BadOutOfService);
            }
            for (var, value) in part.iter().zip(scan.values) {
                if let Some(v) = value {
                    out.insert(*var, v);
                }
            }
        }
    }
    Ok(out)
}

/// A node's value as a DataValue (with the index range applied).
pub fn data_value(value: Result<Variant, StatusCode>, range: &NumericRange, now: DateTime) -> DataValue {
    let value = value.and_then(|v| match range {
        NumericRange::None => Ok(v),
        r => v.range_of_owned(r),
    });
    match value {
        Ok(v) => DataValue {
            value: Some(v),
            status: Some(StatusCode::Good),
            source_timestamp: Some(now),
            server_timestamp: Some(now),
            ..Default::default()
        },
        Err(status) => DataValue { status: Some(status), server_timestamp: Some(now), ..Default::default() },
    }
}
