//! The messages that cross the rings: commands and image writes from the companion, events
//! and log lines from rt-core. All are postcard-encoded into fixed slots; every string and
//! byte buffer is a bounded `heapless` type so decoding never allocates.

use crate::image::IecAddress;
use crate::layout::PlcState;
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
    /// otherwise it starts cold, with its initial values. `online`: an online change, which
    /// carries the running program's values into the new one at the swap as the plan staged
    /// in `SharedMemory::migrate_plan` says (the swap is reported in `SharedMemory::swap`).
    /// `image`: the table sizes the
    /// upload configured (rt-core never sizes a table below what the program's located
    /// variables reach) and whether every table must have one length.
    Load { path: String<MAX_PATH>, start: bool, warm: bool, online: bool, image: crate::sizes::ImageRequest },
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
    /// Write a debug variable once (not a force): applied at the start of the next scan,
    /// before the program runs (at once while the PLC is stopped), converted like `Force`.
    /// A forced variable keeps its forced value. Needs a program built with `var_write`
    /// (`CommandStatus::Unsupported` otherwise).
    SetVar { var: u32, value: Vec<u8, MAX_FORCE_BYTES>, big_endian: bool },
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
    /// The loaded program does not offer what the command needs (a library built before
    /// `var_write` was added to the program ABI, for `SetVar`).
    Unsupported = 12,
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
            12 => Self::Unsupported,
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
            Self::Unsupported => "the loaded program does not support this (rebuild it)",
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

/// The rings a client writes, as `Event::BadMessage` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RingId {
    Commands,
    Writes,
}

impl RingId {
    pub const fn as_str(self) -> &'static str {
        match self {
            RingId::Commands => "command",
            RingId::Writes => "image write",
        }
    }
}

/// Something rt-core's scan thread wants the companion to know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    StateChanged {
        state: PlcState,
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
    /// The program ended its scan its own way (a crash, exit, abort, ...) and was stopped;
    /// state is ERROR. `restart`: it stopped outside its own code (inside libc, say), so
    /// rt-core restarts itself in place (same pid) rather than risk a lock left held.
    ProgramFault {
        cause: FaultCause,
        cycle: u64,
        restart: bool,
    },
    /// The program ran longer than the watchdog allows and was aborted; state is ERROR.
    /// `restart` as for `ProgramFault`.
    WatchdogAbort {
        ran_ns: u64,
        cycle: u64,
        restart: bool,
    },
    /// A forced variable was set or released.
    Forced {
        var: u32,
        forced: bool,
    },
    /// A command or write slot that did not decode (or named something out of range) was
    /// discarded.
    BadMessage {
        ring: RingId,
    },
}

/// How program code ended a call into it, as rt-core's crash guard saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultCause {
    /// A signal: a fault (SIGSEGV, SIGFPE, SIGABRT from glibc's checks, ...) or a
    /// terminating signal the process sent itself.
    Signal(i32),
    /// A call of exit, _exit, _Exit or quick_exit with this status.
    Exit(i32),
    /// A call of abort().
    Abort,
    /// A call of raise() with this signal.
    Raise(i32),
    /// A call of pthread_exit().
    ThreadExit,
    /// The watchdog's abort of a scan that ran too long.
    Watchdog,
}

impl core::fmt::Display for FaultCause {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            FaultCause::Signal(s) => write!(f, "{}", signal_name(s)),
            FaultCause::Exit(status) => write!(f, "a call of exit({status})"),
            FaultCause::Abort => f.write_str("a call of abort()"),
            FaultCause::Raise(s) => write!(f, "raise({})", signal_name(s)),
            FaultCause::ThreadExit => f.write_str("a call of pthread_exit()"),
            FaultCause::Watchdog => f.write_str("a watchdog abort (the scan ran too long)"),
        }
    }
}

/// A Linux signal's name, with what it usually means for a program.
pub const fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL (illegal instruction, or an IEC run-time error)",
        5 => "SIGTRAP (trap)",
        6 => "SIGABRT (abort: an assertion, a heap corruption check, a stack overflow check)",
        7 => "SIGBUS (bus error)",
        8 => "SIGFPE (arithmetic error, e.g. division by zero)",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV (invalid memory access)",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        16 => "SIGSTKFLT",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        26 => "SIGVTALRM",
        27 => "SIGPROF",
        29 => "SIGIO",
        30 => "SIGPWR",
        31 => "SIGSYS (bad system call)",
        34..=64 => "a real-time signal",
        _ => "a signal",
    }
}

/// Why a ring slot was refused by [`decode_command`] or [`decode_write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a postcard encoding of the message (a bad tag, a bad varint, a field out of
    /// range such as `%MW5000`, text that is not UTF-8, a buffer over its bound, …).
    Malformed,
    /// A message followed by bytes that belong to none.
    TrailingBytes,
    /// An image write whose value does not fit the location's width.
    ValueTooLarge,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DecodeError::Malformed => "not a valid message",
            DecodeError::TrailingBytes => "bytes after the message",
            DecodeError::ValueTooLarge => "value does not fit the location",
        })
    }
}

fn decode_exact<'a, M: Deserialize<'a>>(bytes: &'a [u8]) -> Result<M, DecodeError> {
    match postcard::take_from_bytes::<M>(bytes) {
        Ok((message, [])) => Ok(message),
        Ok(_) => Err(DecodeError::TrailingBytes),
        Err(_) => Err(DecodeError::Malformed),
    }
}

/// Decodes one command slot as rt-core takes it from the shared memory: a pure function
/// of the slot's bytes that never panics and never allocates, so it can be fuzzed as is.
/// Everything inside is bounded by its type (`heapless` strings and buffers); what only
/// the loaded program can judge (a variable index, a value's size) is checked when the
/// command is carried out.
pub fn decode_command(bytes: &[u8]) -> Result<CommandEnvelope, DecodeError> {
    decode_exact(bytes)
}

/// Decodes one image-write slot: the address is in range (see [`IecAddress`]) and the
/// value fits its width, or the slot is refused. Pure, like [`decode_command`].
pub fn decode_write(bytes: &[u8]) -> Result<ImageWrite, DecodeError> {
    let write: ImageWrite = decode_exact(bytes)?;
    write.addr.check_value(write.value).map_err(|_| DecodeError::ValueTooLarge)?;
    Ok(write)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::IecAddress;

    fn encode<M: Serialize>(m: &M) -> heapless::Vec<u8, 512> {
        let mut buf = [0u8; 512];
        let used = postcard::to_slice(m, &mut buf).unwrap();
        heapless::Vec::from_slice(used).unwrap()
    }

    #[test]
    fn commands_round_trip_and_garbage_is_refused() {
        let commands = [
            Command::Start,
            Command::Load {
                path: bounded("/x/y.so"),
                start: true,
                warm: false,
                online: true,
                image: crate::sizes::ImageRequest::FROM_PROGRAM,
            },
            Command::Load {
                path: bounded(&"p".repeat(MAX_PATH)),
                start: true,
                warm: true,
                online: false,
                image: crate::sizes::ImageRequest { configured: crate::sizes::ImageSizes::FULL, square: true },
            },
            Command::Force { var: 3, value: Vec::from_slice(&[1, 2]).unwrap(), big_endian: true },
            Command::SetVar { var: 9, value: Vec::from_slice(&[7]).unwrap(), big_endian: false },
            Command::Shutdown,
        ];
        for (seq, command) in commands.into_iter().enumerate() {
            let envelope = CommandEnvelope { seq: seq as u32, command };
            let bytes = encode(&envelope);
            assert_eq!(decode_command(&bytes), Ok(envelope.clone()));
            let mut longer = bytes.clone();
            longer.push(0).unwrap();
            assert_eq!(decode_command(&longer), Err(DecodeError::TrailingBytes));
        }
        assert_eq!(decode_command(&[]), Err(DecodeError::Malformed));
        assert_eq!(decode_command(&[1, 200]), Err(DecodeError::Malformed), "no command 200");
        // A Force whose value claims 300 bytes (over MAX_FORCE_BYTES).
        assert_eq!(decode_command(&[1, 4, 0, 0xAC, 0x02]), Err(DecodeError::Malformed));
    }

    #[test]
    fn writes_are_checked_for_range_and_width() {
        let ok = ImageWrite { addr: IecAddress::parse("%QW3").unwrap(), value: 7 };
        assert_eq!(decode_write(&encode(&ok)), Ok(ok));
        // %MW65536 = 42 (index varint 0x80 0x80 0x04, past 16 bits), as a client with its
        // own encoder could send it. (Whether %MW5000 is inside the running program's
        // tables is rt-core's check: it knows the sizes.)
        assert_eq!(decode_write(&[2, 2, 0x80, 0x80, 0x04, 0, 42]), Err(DecodeError::Malformed));
        // %QX0.0 = 2: a bit holds 0 or 1.
        assert_eq!(decode_write(&[1, 0, 0, 0, 2]), Err(DecodeError::ValueTooLarge));
    }

    #[test]
    fn decoding_every_short_slot_never_panics() {
        // Every slot of up to 3 bytes over an alphabet of interesting bytes.
        let alphabet = [0u8, 1, 2, 4, 7, 9, 0x7F, 0x80, 0xFF];
        let mut slot = [0u8; 3];
        for len in 0..=3 {
            let combos = alphabet.len().pow(len as u32);
            for n in 0..combos {
                let mut k = n;
                for b in slot.iter_mut().take(len) {
                    *b = alphabet[k % alphabet.len()];
                    k /= alphabet.len();
                }
                let _ = decode_command(&slot[..len]);
                let _ = decode_write(&slot[..len]);
            }
        }
    }
}
