//! The wait-free queues between the scan thread and the loader thread: load requests and
//! retired programs one way, loaded programs back. Programs travel as boxes, so neither a
//! load nor a retirement ever allocates or frees on the scan thread.

use crate::program::LoadedProgram;
use shared_abi::msg::MAX_PATH;

/// Work for the loader thread.
// The path travels inline: boxing it would allocate on the scan thread.
#[allow(clippy::large_enum_variant)]
pub enum LoaderRequest {
    Load {
        seq: u32,
        path: heapless::String<MAX_PATH>,
        start: bool,
        warm: bool,
        /// An online change: the loader attaches the staged migration plan to the program.
        online: bool,
        program_gen: u32,
        image: shared_abi::sizes::ImageRequest,
    },
    /// A program that was swapped out or unloaded, to be unloaded off the scan thread.
    Retire(Box<LoadedProgram>),
}

/// The loader thread's answers.
pub enum LoaderReply {
    Loaded { program: Box<LoadedProgram>, start: bool },
    Failed,
}

/// The scan thread's ends of the queues.
pub struct LoaderLink {
    pub to_loader: rtrb::Producer<LoaderRequest>,
    pub from_loader: rtrb::Consumer<LoaderReply>,
}

/// The loader thread's ends of the same queues.
pub struct LoaderEnds {
    pub requests: rtrb::Consumer<LoaderRequest>,
    pub replies: rtrb::Producer<LoaderReply>,
}

/// Makes the pair of queues (capacity enough for a swap and a retirement in flight).
pub fn loader_queues() -> (LoaderLink, LoaderEnds) {
    let (to_loader, requests) = rtrb::RingBuffer::new(8);
    let (replies, from_loader) = rtrb::RingBuffer::new(8);
    (LoaderLink { to_loader, from_loader }, LoaderEnds { requests, replies })
}
