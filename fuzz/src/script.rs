//! The byte script that drives `raft_step`: a tag byte per operation, then its operands.
//! Reading past the end yields zeros, and the script ends once every byte is consumed,
//! so any input is a valid script and a short input a short one.

/// The operations, by tag (the tag byte is taken modulo `OP_COUNT`).
pub mod op {
    /// node, count: `count % 16 + 1` ticks of one node.
    pub const TICK: u8 = 0;
    /// One tick of every live node.
    pub const TICK_ALL: u8 = 1;
    /// position (u16): deliver that in-flight message (any order: reordering).
    pub const DELIVER: u8 = 2;
    /// Deliver in-flight messages oldest first, at most 256 of them.
    pub const DELIVER_ALL: u8 = 3;
    /// position (u16): lose that in-flight message.
    pub const DROP: u8 = 4;
    /// position (u16): deliver that message and leave a copy in flight.
    pub const DUPLICATE: u8 = 5;
    /// node, size: propose `size % 24` bytes (at least the 8-byte unique value).
    pub const PROPOSE: u8 = 6;
    /// node: a linearizable read (ReadIndex).
    pub const READ: u8 = 7;
    /// node, target: leadership transfer.
    pub const TRANSFER: u8 = 8;
    /// node, kind, target: add learner / promote / remove.
    pub const CONF_CHANGE: u8 = 9;
    /// node: snapshot the state machine at its applied index and compact the log.
    pub const COMPACT: u8 = 10;
    /// node, point: crash now (0), or while handling its next `Ready`: before (1) or
    /// after (2) persisting it.
    pub const CRASH: u8 = 11;
    /// node: restart from what its disk holds.
    pub const RESTART: u8 = 12;
    /// node, lazy: a lazy node leaves its `Ready` until `READY` (several inputs then
    /// reach it before one `Ready`, as a batching driver does).
    pub const SET_LAZY: u8 = 13;
    /// node: handle its `Ready`s now; with none pending, `ready()` must be empty.
    pub const READY: u8 = 14;
    /// A forged message (see `Cluster::forge`): hostile, structurally a message.
    pub const FORGE: u8 = 15;
    /// position (u16), byte index (u16), byte: an in-flight message corrupted in its
    /// wire encoding, delivered if it still decodes.
    pub const CORRUPT: u8 = 16;
    pub const OP_COUNT: u8 = 17;
    pub const NAMES: [&str; OP_COUNT as usize] = [
        "tick",
        "tick all",
        "deliver",
        "deliver all",
        "drop",
        "duplicate",
        "propose",
        "read",
        "transfer",
        "conf change",
        "compact",
        "crash",
        "restart",
        "set lazy",
        "ready",
        "forge",
        "corrupt",
    ];
}

#[derive(Debug)]
pub struct Script<'a> {
    bytes: &'a [u8],
}

impl<'a> Script<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn is_done(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&first, rest)) => {
                self.bytes = rest;
                first
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for byte in &mut bytes {
            *byte = self.byte();
        }
        u64::from_le_bytes(bytes)
    }

    pub fn bytes(&mut self, count: usize) -> Vec<u8> {
        (0..count).map(|_| self.byte()).collect()
    }

    /// A term or index near `base` most of the time (where the bugs are), else extreme.
    pub fn number(&mut self, base: u64) -> u64 {
        match self.byte() % 10 {
            0 => 0,
            1 => base.saturating_sub(1),
            2 | 3 => base,
            4 => base.saturating_add(1),
            5 => base.saturating_add(2),
            6 => base.saturating_sub(u64::from(self.byte() % 8)),
            7 => u64::from(self.byte()),
            8 => [1 << 62, (1 << 62) + 1, u64::MAX, (1 << 62) - 1][usize::from(self.byte() % 4)],
            _ => self.u64(),
        }
    }
}

/// Writes scripts (for the seed corpus).
#[derive(Debug, Default)]
pub struct ScriptWriter {
    pub bytes: Vec<u8>,
}

impl ScriptWriter {
    pub fn op(&mut self, tag: u8, operands: &[u8]) -> &mut Self {
        self.bytes.push(tag);
        self.bytes.extend_from_slice(operands);
        self
    }

    /// Ticks `node` until it campaigns and lets the election finish.
    pub fn elect(&mut self, node: u8) -> &mut Self {
        for _ in 0..2 {
            self.op(op::TICK, &[node, 15]);
        }
        for _ in 0..4 {
            self.op(op::DELIVER_ALL, &[]);
        }
        self
    }
}
