//! The two wire layers, pure and allocation-free: ISO-on-TCP framing and S7comm PDUs.

pub mod iso;
pub mod s7;
