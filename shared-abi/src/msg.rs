//! The messages that cross the rings: commands and image writes from the companion, events
//! and log lines from rt-core. All are postcard-encoded into fixed slots; every string and
//! byte buffer is a bounded `heapless` type so decoding never allocates.

use crate::image::IecAddress;
use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

/// Longest program path a `Load` command carries.
pub const MAX_PATH: usize = 240;
/// Largest forced value (a Gen B WSTRING is 253 bytes).
pub const MAX_FORCE_BYTES: usize = 256;
/// Longest log line text.
pub const MAX_LOG_TEXT: usize = 480;
/// Commands rt-core takes from the command ring per cycle; the rest wait for the next one.
pub const MAX_COMMANDS_PER_CYCLE: usize = 8;
/// Image writes rt-core applies per cycle. A backlog longer than this takes several cycles
/// to drain, which is how a client computes by when its writes are applied.
pub const MAX_WRITES_PER_CYCLE: usize = 256;

/// A command for rt-core's scan thread, tagged with the client's sequence number so the
/// result can be matched in `Control::results`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    pub seq: u32,
    pub command: Command,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Run the loaded program.
    Start,
    /// Stop running it; `%Q` outputs go to zero, memory is kept.
    Stop,
    /// Load a program library off the scan thread and swap it in at a cycle boundary.
    /// The outcome is reported in `SharedMemory::load_result`. `warm`: give the program
    /// the RETAIN values staged in `SharedMemory::retain_restore` (when they are its own);
    /// otherwise it starts cold, with its initial values.
    Load { path: String<MAX_PATH>, start: bool, warm: bool },
    /// Drop the program (state EMPTY).
    Unload,
    /// Force a debug variable. `big_endian` values are converted to native order by
    /// rt-core, which knows the variable's size and kind.
    Force { var: u32, value: Vec<u8, MAX_FORCE_BYTES>, big_endian: bool },
    /// Release one forced variable.
    Unforce { var: u32 },
    /// Release every forced variable.
    UnforceAll,
    /// Zero the statistics and the latency histogram.
    ResetStats,
    /// Leave the scan loop and exit the process.
    Shutdown,
}

/// What the scan thread made of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CommandStatus {
    Ok = 1,
    /// Accepted; the outcome comes later (a `Load`).
    Accepted = 2,
    AlreadyRunning = 3,
    NotRunning = 4,
    NoProgram = 5,
    /// Another load is still in progress.
    Busy = 6,
    /// No such debug variable in the loaded program.
    BadVariable = 7,
    /// The forced value does not fit the variable.
    BadValue = 8,
    /// The command slot did not decode.
    Undecodable = 9,
    /// The PLC is in ERROR; load a program again first.
    InError = 10,
    /// The forced-variable table is full.
    TooManyForces = 11,
}

impl CommandStatus {
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Ok,
            2 => Self::Accepted,
            3 => Self::AlreadyRunning,
            4 => Self::NotRunning,
            5 => Self::NoProgram,
            6 => Self::Busy,
            7 => Self::BadVariable,
            8 => Self::BadValue,
            9 => Self::Undecodable,
            10 => Self::InError,
            11 => Self::TooManyForces,
            _ => return None,
        })
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Accepted => "accepted",
            Self::AlreadyRunning => "already running",
            Self::NotRunning => "not running",
            Self::NoProgram => "no program loaded",
            Self::Busy => "a program load is in progress",
            Self::BadVariable => "no such debug variable",
            Self::BadValue => "value does not fit the variable",
            Self::Undecodable => "command could not be decoded",
            Self::InError => "PLC is in ERROR; load a program first",
            Self::TooManyForces => "too many forced variables",
        }
    }
}

/// A write into the image from outside the program (a Modbus client, a plugin, a test),
/// applied by rt-core at the start of the next cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageWrite {
    pub addr: IecAddress,
    pub value: u64,
}

/// Something rt-core's scan thread wants the companion to know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    StateChanged {
        state: u32,
        cycle: u64,
    },
    ProgramSwapped {
        program_gen: u32,
        cycle: u64,
    },
    /// Deadlines missed since the last report (at most one report a second).
    Overruns {
        new: u64,
        total: u64,
        worst_latency_ns: u64,
    },
    /// The program raised a signal (`signal`) and was stopped; state is ERROR.
    ProgramFault {
        signal: i32,
        cycle: u64,
    },
    /// The program ran longer than the watchdog allows and was aborted; state is ERROR.
    WatchdogAbort {
        ran_ns: u64,
        cycle: u64,
    },
    /// A forced variable was set or released.
    Forced {
        var: u32,
        forced: bool,
    },
    /// A command or write slot that did not decode was discarded.
    BadMessage {
        ring: u8,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum LogLevel {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
}

impl LogLevel {
    /// The names the OpenPLC runtime-logs API uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

/// A line for the runtime log, from rt-core's control thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub text: String<MAX_LOG_TEXT>,
}

impl LogLine {
    /// Builds a line, cutting `text` at a character boundary if it is too long.
    pub fn new(level: LogLevel, text: &str) -> Self {
        let mut s = String::new();
        let mut end = text.len().min(MAX_LOG_TEXT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // Cannot fail: `end` bytes fit by construction.
        let _ = s.push_str(&text[..end]);
        LogLine { level, text: s }
    }
}

/// Copies `text` into a bounded string, cutting at a character boundary.
pub fn bounded<const N: usize>(text: &str) -> String<N> {
    let mut s = String::new();
    let mut end = text.len().min(N);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let _ = s.push_str(&text[..end]);
    s
}
