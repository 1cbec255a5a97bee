#![warn(missing_docs)]
//! nf_tables over netlink: one transaction (batch) of table, chain, set,
//! element and rule messages, sent atomically, with a safe API.
//!
//! This is the only crate in netward with `unsafe` code: the calls into
//! libnftnl that build the messages and the socket that sends them. Nothing
//! here knows about policies; `netward_dataplane::netlink` encodes rulesets
//! into `Expr`s and element bytes.

use std::ffi::{c_char, c_void, CString};
use std::ptr::NonNull;

use nftnl_sys as sys;
use nftnl_sys::libc;

pub mod conntrack;

/// `NFPROTO_INET`: tables for both IPv4 and IPv6.
pub const FAMILY_INET: u16 = 1;

/// Registers (nf_tables.h): the verdict register and the first data registers.
pub const REG_VERDICT: u32 = 0;
/// `NFT_REG_1`: the first 16-byte data register, wide enough for an IPv6 address.
pub const REG_1: u32 = 1;
/// `NFT_REG_2`: the 16-byte register after `REG_1`, for the second part of a key.
pub const REG_2: u32 = 2;

/// Verdict codes (netfilter.h / nf_tables.h).
pub const NF_DROP: i32 = 0;
/// Accept the packet: no later rule of this base chain sees it.
pub const NF_ACCEPT: i32 = 1;
/// Evaluate another chain, then come back to the next rule here.
pub const NFT_JUMP: i32 = -3;
/// Continue in another chain and do not come back.
pub const NFT_GOTO: i32 = -4;
/// End this chain: back to the rule after the jump, or the base chain's policy.
pub const NFT_RETURN: i32 = -5;

/// Set flags.
pub const SET_INTERVAL: u32 = 0x4;
/// `NFT_SET_MAP`: each key maps to data (a verdict for netward's maps).
pub const SET_MAP: u32 = 0x8;
/// Element flag: this element ends an interval.
pub const ELEM_INTERVAL_END: u32 = 0x1;
/// `NFT_DATA_VERDICT`: the data type of verdict maps.
pub const DATA_VERDICT: u32 = 0xffff_ff00;

/// One nf_tables expression of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `meta load KEY => dreg`.
    Meta {
        /// The meta key (`NFT_META_*`: mark, iifname, nfproto, l4proto, ...).
        key: u32,
        /// The register the value is loaded into.
        dreg: u32,
    },
    /// `meta set KEY with sreg`.
    MetaSet {
        /// The meta key to set (`NFT_META_*`; netward sets the packet mark).
        key: u32,
        /// The register holding the new value.
        sreg: u32,
    },
    /// `payload load LEN @ BASE + OFFSET => dreg`.
    Payload {
        /// The header the offset counts from (`NFT_PAYLOAD_*`: 1 network, 2 transport).
        base: u32,
        /// Bytes from the start of that header.
        offset: u32,
        /// How many bytes to load.
        len: u32,
        /// The register the bytes are loaded into.
        dreg: u32,
    },
    /// `cmp OP sreg DATA` (op 0 = eq, 1 = neq).
    Cmp {
        /// The register compared.
        sreg: u32,
        /// The comparison (`NFT_CMP_*`).
        op: u32,
        /// The value compared with; its length is how many bytes are compared.
        data: Vec<u8>,
    },
    /// `bitwise dreg = (sreg & MASK) ^ XOR`.
    Bitwise {
        /// The register read.
        sreg: u32,
        /// The register the result is written to.
        dreg: u32,
        /// ANDed with the source; its length is the operation's length.
        mask: Vec<u8>,
        /// XORed with the masked value.
        xor: Vec<u8>,
    },
    /// `ct load KEY => dreg`.
    Ct {
        /// The conntrack key (`NFT_CT_*`; 0 is the connection state).
        key: u32,
        /// The register the value is loaded into.
        dreg: u32,
    },
    /// `lookup sreg set NAME [dreg] [inverted]`.
    Lookup {
        /// The register where the key starts (a concatenation runs on into the next ones).
        sreg: u32,
        /// For a map, the register the value is loaded into (`REG_VERDICT` for a verdict map).
        dreg: Option<u32>,
        /// The set or map, by name, in the rule's table.
        set: String,
        /// Match when the key is not in the set (`NFT_LOOKUP_F_INV`).
        invert: bool,
    },
    /// `immediate reg 0 VERDICT [chain]`.
    Verdict {
        /// `NF_ACCEPT`, `NF_DROP`, `NFT_JUMP`, `NFT_GOTO` or `NFT_RETURN`.
        code: i32,
        /// The target chain of a jump or goto.
        chain: Option<String>,
    },
    /// `log prefix PREFIX`.
    Log {
        /// The text logged before the packet's headers.
        prefix: String,
    },
}

/// What a set is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetSpec {
    /// `SET_INTERVAL` (keys are ranges) and/or `SET_MAP`.
    pub flags: u32,
    /// nft's datatype id of the key (concatenations packed 6 bits per part).
    pub key_type: u32,
    /// Key length in bytes; a concatenation's parts are each padded to 4 bytes.
    pub key_len: u32,
    /// For verdict maps.
    pub data_type: Option<u32>,
    /// nft's set userdata (key byte order, for `nft list` to print elements).
    pub userdata: Vec<u8>,
}

/// One set element: key bytes, flags, and a verdict for maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elem {
    /// The key as the kernel stores it (addresses and ports in network order).
    pub key: Vec<u8>,
    /// `ELEM_INTERVAL_END` on the element that closes an interval, else 0.
    pub flags: u32,
    /// For verdict maps: the verdict code and the chain it jumps or goes to.
    pub verdict: Option<(i32, String)>,
}

/// A message the kernel refused, named by what it was doing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {}", std::io::Error::from_raw_os_error(*.errno))]
pub struct BatchError {
    /// What the refused message did, e.g. `add rule netward/pol-in-x`.
    pub what: String,
    /// The errno the kernel answered with (negative errno as the kernel sends it, made positive).
    pub errno: i32,
}

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The socket could not be opened or used.
    #[error("netlink socket: {0}")]
    Io(std::io::Error),
    /// The kernel refused the transaction; nothing was changed.
    #[error("{}", joined(.0))]
    Refused(Vec<BatchError>),
    /// A message could not be built; nothing was sent.
    #[error("not sent: {0}")]
    Build(BuildError),
}

/// Every refusal of a transaction, in one line.
fn joined(errs: &[BatchError]) -> String {
    errs.iter().map(BatchError::to_string).collect::<Vec<_>>().join("; ")
}

/// A netlink socket to nf_tables, opened in some network namespace.
pub struct Conn {
    sock: mnl::Socket,
}

// SAFETY: an mnl socket is a file descriptor plus its bound address; it may
// move between threads as long as one thread uses it at a time, which `&mut`
// on `commit` guarantees.
unsafe impl Send for Conn {}

/// `setsockopt(SOL_SOCKET, option, value)`; `T` is the C type the option takes.
fn set_socket_option<T>(sock: &impl std::os::fd::AsRawFd, option: libc::c_int, value: &T) -> std::io::Result<()> {
    // SAFETY: a valid fd, and a pointer to a live T with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (value as *const T).cast::<c_void>(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Conn {
    /// A socket in this thread's network namespace, with a receive timeout so
    /// a lost answer cannot hang the caller.
    pub fn open() -> std::io::Result<Conn> {
        let sock = mnl::Socket::new(mnl::Bus::Netfilter)?;
        let conn = Conn { sock };
        conn.set_timeout(std::time::Duration::from_secs(5))?;
        // Room for the answers of a large batch (best effort; the kernel caps it).
        let size: libc::c_int = 8 << 20;
        let _ = set_socket_option(&conn.sock, libc::SO_RCVBUF, &size);
        Ok(conn)
    }

    /// One datagram already queued on the socket, without waiting: its
    /// length, or None when nothing is queued. A datagram larger than `buf`,
    /// or answers the kernel dropped for want of buffer space (ENOBUFS), are
    /// errors: an answer lost could be a refusal.
    fn recv_queued(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.sock);
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes; with
        // MSG_TRUNC the kernel writes at most that and returns the real length.
        let n = unsafe {
            libc::recv(fd, buf.as_mut_ptr().cast::<c_void>(), buf.len(), libc::MSG_DONTWAIT | libc::MSG_TRUNC)
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(None),
                _ if e.raw_os_error() == Some(libc::ENOBUFS) => Err(std::io::Error::other(
                    "the kernel dropped answers to the batch (ENOBUFS); whether it was applied is unknown until the table is read back",
                )),
                _ => Err(e),
            };
        }
        let n = n as usize;
        if n > buf.len() {
            return Err(std::io::Error::other(format!(
                "an answer of {n} bytes did not fit the {} byte buffer",
                buf.len()
            )));
        }
        Ok(Some(n))
    }

    /// Every flow the kernel tracks in this socket's namespace (ctnetlink
    /// dump, both families).
    pub fn conntrack_flows(&mut self) -> std::io::Result<Vec<conntrack::Flow>> {
        self.sock.send(&conntrack::dump_request(1))?;
        let mut flows = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = self.sock.recv_raw(&mut buf)?;
            let p = conntrack::parse(&buf[..n]);
            if let Some(e) = p.errors.first() {
                return Err(std::io::Error::from_raw_os_error(*e));
            }
            flows.extend(p.flows);
            if p.done {
                return Ok(flows);
            }
        }
    }

    /// Deletes the flows with these original tuples; returns how many were
    /// deleted (a flow that ended meanwhile is not an error).
    pub fn conntrack_delete(&mut self, tuples: &[conntrack::Tuple]) -> std::io::Result<usize> {
        let mut deleted = 0;
        let mut buf = vec![0u8; 1 << 16];
        // A few hundred requests per datagram; the kernel answers each (it
        // handles them inside sendmsg), and the answers are drained at once.
        for (i, chunk) in tuples.chunks(256).enumerate() {
            let mut msg = Vec::new();
            for (j, t) in chunk.iter().enumerate() {
                msg.extend(conntrack::delete_request(t, (i * 256 + j) as u32 + 2));
            }
            self.sock.send(&msg)?;
            let mut answered = 0;
            while answered < chunk.len() {
                let Some(n) = self.recv_queued(&mut buf)? else { break };
                let acks = parse_acks(&buf[..n]);
                answered += acks.len();
                deleted += acks.iter().filter(|(_, errno)| *errno == 0).count();
            }
        }
        Ok(deleted)
    }

    fn set_timeout(&self, t: std::time::Duration) -> std::io::Result<()> {
        let tv = libc::timeval { tv_sec: t.as_secs() as libc::time_t, tv_usec: t.subsec_micros() as libc::suseconds_t };
        set_socket_option(&self.sock, libc::SO_RCVTIMEO, &tv)
    }

    /// A socket in the network namespace at `path` (e.g. `/run/netns/NAME`).
    /// A socket stays in the namespace it was created in, so a short-lived
    /// thread enters the namespace, opens it and hands it back; the caller's
    /// own namespace never changes.
    pub fn open_in_netns(path: &std::path::Path) -> std::io::Result<Conn> {
        let file = std::fs::File::open(path)?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a valid namespace fd; setns only affects this thread.
                let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Conn::open()
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the namespace thread panicked")))
        })
    }
}

fn cstr(s: &str) -> CString {
    // Names never contain NUL: they come from our own naming scheme.
    CString::new(s.replace('\0', "")).expect("NUL bytes were removed")
}

/// Limits of nf_tables and libnftnl that this crate checks before anything
/// reaches libnftnl, because libnftnl copies into fixed-size fields and
/// writes messages into its batch buffer without bounds checks.
pub mod limits {
    /// `NFT_NAME_MAXLEN` (table, chain, set names) less the NUL.
    pub const NAME: usize = 255;
    /// `NFT_DATA_VALUE_MAXLEN`: a data register, an element key, a `cmp`
    /// or `bitwise` operand (libnftnl memcpys into a 64-byte union).
    pub const DATA: usize = 64;
    /// `NFT_USERDATA_MAXLEN`: a rule's or a set's userdata.
    pub const USERDATA: usize = 256;
    /// `NF_LOG_PREFIXLEN` less the NUL.
    pub const LOG_PREFIX: usize = 127;
    /// The longest message written into the batch: libnftnl writes each
    /// message into the overrun room of its page (64 KiB) unchecked.
    pub const MESSAGE: usize = 60 * 1024;
    /// Bytes of element data per NEWSETELEM message, well inside a page.
    pub const ELEMENT_BYTES: usize = 16 * 1024;
}

/// Why a message could not be built. The batch keeps the first one, builds
/// nothing after it, and [`Batch::commit`] sends nothing: a transaction is
/// whole or not at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A value longer than nf_tables or libnftnl can hold.
    #[error("{what}: {len} bytes, the limit is {max}")]
    TooLong {
        /// What was too long, e.g. `chain name "..."` or `message (add rule ...)`.
        what: String,
        /// Its length in bytes.
        len: usize,
        /// The most nf_tables or libnftnl takes.
        max: usize,
    },
    /// libnftnl refused an attribute or could not allocate.
    #[error("libnftnl refused {0}")]
    Libnftnl(String),
}

fn check_len(what: impl FnOnce() -> String, len: usize, max: usize) -> Result<(), BuildError> {
    if len > max {
        return Err(BuildError::TooLong { what: what(), len, max });
    }
    Ok(())
}

fn check_name(kind: &str, name: &str) -> Result<(), BuildError> {
    check_len(|| format!("{kind} name {:?}", name.chars().take(40).collect::<String>()), name.len(), limits::NAME)
}

/// A libnftnl setter's return code: 0, or -1 when it refused.
fn rc(code: libc::c_int, what: &str) -> Result<(), BuildError> {
    if code < 0 {
        return Err(BuildError::Libnftnl(what.to_string()));
    }
    Ok(())
}

/// One libnftnl object, freed when dropped (also on an early return), unless
/// ownership passes to libnftnl with [`Owned::into_raw`].
struct Owned<T> {
    ptr: NonNull<T>,
    free: unsafe extern "C" fn(*const T),
}

impl<T> Owned<T> {
    /// Takes a pointer fresh from a libnftnl `*_alloc`; null means it could
    /// not allocate.
    fn new(ptr: *mut T, free: unsafe extern "C" fn(*const T), what: &str) -> Result<Owned<T>, BuildError> {
        let ptr =
            NonNull::new(ptr).ok_or_else(|| BuildError::Libnftnl(format!("to allocate {what} (out of memory)")))?;
        Ok(Owned { ptr, free })
    }

    fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Hands the object to libnftnl (e.g. an expression added to a rule).
    fn into_raw(self) -> *mut T {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from the libnftnl allocator that `free` belongs
        // to, and no one else owns it (into_raw forgets self).
        unsafe { (self.free)(self.ptr.as_ptr()) };
    }
}

/// `nftnl_set_elem_free` takes a mutable pointer where the other frees take
/// a const one; the same call, in the shape `Owned` stores.
unsafe extern "C" fn free_set_elem(e: *const sys::nftnl_set_elem) {
    // SAFETY: the caller (Owned's drop) passes the element it owns.
    unsafe { sys::nftnl_set_elem_free(e.cast_mut()) }
}

/// An upper bound of one netlink attribute's size: header, payload, padding.
fn attr(len: usize) -> usize {
    4 + len.div_ceil(4) * 4
}

/// An upper bound of a message carrying `payload` bytes of attributes.
fn message(payload: usize) -> usize {
    16 + 4 + payload
}

/// An nf_tables transaction being built.
pub struct Batch {
    raw: NonNull<sys::nftnl_batch>,
    seq: u32,
    /// Sequence number -> what the message does, for error messages.
    labels: Vec<(u32, String)>,
    /// The first message that could not be built; nothing is built after it.
    error: Option<BuildError>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: `raw` came from nftnl_batch_alloc and is freed once.
        unsafe { sys::nftnl_batch_free(self.raw.as_ptr()) };
    }
}

impl Batch {
    /// An empty transaction; messages are added to it in order.
    pub fn new() -> Self {
        // 32 pages per batch page, as nft does; overrun room for one message
        // of up to `limits::MESSAGE` bytes.
        // SAFETY: plain allocation; a null result is handled below.
        let raw = unsafe { sys::nftnl_batch_alloc(4096 * 32, 65536) };
        let raw = NonNull::new(raw).expect("libnftnl could not allocate a batch (out of memory)");
        let mut b = Batch { raw, seq: 1, labels: Vec::new(), error: None };
        // SAFETY: the buffer belongs to the batch and has room for a header.
        unsafe { sys::nftnl_batch_begin(b.buffer(), b.seq) };
        b.advance();
        b
    }

    /// The first message that could not be built, if any.
    pub fn error(&self) -> Option<&BuildError> {
        self.error.as_ref()
    }

    fn buffer(&self) -> *mut c_char {
        // SAFETY: `raw` is a live batch.
        unsafe { sys::nftnl_batch_buffer(self.raw.as_ptr()).cast::<c_char>() }
    }

    fn advance(&mut self) {
        // SAFETY: `raw` is a live batch; update moves to the next message slot.
        if unsafe { sys::nftnl_batch_update(self.raw.as_ptr()) } < 0 {
            // libnftnl only fails here when it cannot grow its buffer.
            panic!("libnftnl could not grow the batch (out of memory)");
        }
        self.seq += 1;
    }

    /// Builds one message: `size` is an upper bound of its length, checked
    /// against the batch's overrun room before libnftnl writes a byte;
    /// `build` fills the header `header` returns. After a failure nothing
    /// more is built.
    fn message(
        &mut self,
        what: impl FnOnce() -> String,
        size: usize,
        build: impl FnOnce(&mut Batch) -> Result<(), BuildError>,
    ) {
        if self.error.is_some() {
            return;
        }
        let result = check_len(|| format!("message ({})", what()), size, limits::MESSAGE).and_then(|()| build(self));
        match result {
            Ok(()) => self.advance(),
            Err(e) => self.error = Some(e),
        }
    }

    /// Writes a header for the next message; returns it and records the label.
    fn header(&mut self, msg: i32, flags: i32, what: String) -> *mut libc::nlmsghdr {
        self.labels.push((self.seq, what));
        // No NLM_F_ACK: the kernel reports every failure whether asked or not,
        // and answering every message would flood the socket on large batches.
        // SAFETY: the batch buffer has room for one message of up to
        // `limits::MESSAGE` bytes (the overrun room nftnl_batch_update keeps),
        // and `message` checked this one's bound.
        unsafe { sys::nftnl_nlmsg_build_hdr(self.buffer(), msg as u16, FAMILY_INET, flags as u16, self.seq) }
    }

    /// Number of messages in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether no message was added.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn table_msg(&mut self, table: &str, msg: i32, flags: i32, verb: &str) {
        let size = message(attr(table.len() + 1) + attr(4));
        self.message(
            || format!("{verb} table {table}"),
            size,
            |b| {
                check_name("table", table)?;
                let name = cstr(table);
                // SAFETY: a fresh table, freed by Owned; setters copy their data.
                unsafe {
                    let t = Owned::new(sys::nftnl_table_alloc(), sys::nftnl_table_free, "a table")?;
                    rc(
                        sys::nftnl_table_set_str(t.as_ptr(), sys::NFTNL_TABLE_NAME as u16, name.as_ptr()),
                        "a table name",
                    )?;
                    sys::nftnl_table_set_u32(t.as_ptr(), sys::NFTNL_TABLE_FAMILY as u16, FAMILY_INET as u32);
                    let h = b.header(msg, flags, format!("{verb} table {table}"));
                    sys::nftnl_table_nlmsg_build_payload(h, t.as_ptr());
                }
                Ok(())
            },
        );
    }

    /// Adds an inet table, or leaves it as it is when it already exists.
    pub fn add_table(&mut self, table: &str) {
        self.table_msg(table, libc::NFT_MSG_NEWTABLE, libc::NLM_F_CREATE, "add");
    }

    /// Deletes an inet table with every chain, set and rule in it.
    pub fn delete_table(&mut self, table: &str) {
        self.table_msg(table, libc::NFT_MSG_DELTABLE, 0, "delete");
    }

    /// Adds a chain; `base` is (hook number, priority) for a filter base chain
    /// with policy accept.
    pub fn add_chain(&mut self, table: &str, chain: &str, base: Option<(u32, i32)>) {
        let label = format!("add chain {table}/{chain}");
        self.chain_msg(table, chain, base, libc::NFT_MSG_NEWCHAIN, libc::NLM_F_CREATE, label);
    }

    /// Deletes a chain; no rule may still jump or go to it.
    pub fn delete_chain(&mut self, table: &str, chain: &str) {
        let label = format!("delete chain {table}/{chain}");
        self.chain_msg(table, chain, None, libc::NFT_MSG_DELCHAIN, 0, label);
    }

    fn chain_msg(&mut self, table: &str, chain: &str, base: Option<(u32, i32)>, msg: i32, flags: i32, label: String) {
        let size = message(attr(table.len() + 1) + attr(chain.len() + 1) + 8 * attr(8) + attr(32));
        let what = label.clone();
        self.message(
            || what,
            size,
            |b| {
                check_name("table", table)?;
                check_name("chain", chain)?;
                let (t, n, ty) = (cstr(table), cstr(chain), cstr("filter"));
                // SAFETY: a fresh chain, freed by Owned; setters copy their data.
                unsafe {
                    let c = Owned::new(sys::nftnl_chain_alloc(), sys::nftnl_chain_free, "a chain")?;
                    let c = c.as_ptr();
                    rc(sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_TABLE as u16, t.as_ptr()), "a chain's table")?;
                    rc(sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_NAME as u16, n.as_ptr()), "a chain name")?;
                    sys::nftnl_chain_set_u32(c, sys::NFTNL_CHAIN_FAMILY as u16, FAMILY_INET as u32);
                    if let Some((hook, prio)) = base {
                        sys::nftnl_chain_set_u32(c, sys::NFTNL_CHAIN_HOOKNUM as u16, hook);
                        sys::nftnl_chain_set_s32(c, sys::NFTNL_CHAIN_PRIO as u16, prio);
                        rc(sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_TYPE as u16, ty.as_ptr()), "a chain type")?;
                        sys::nftnl_chain_set_u32(c, sys::NFTNL_CHAIN_POLICY as u16, NF_ACCEPT as u32);
                    }
                    let h = b.header(msg, flags, label);
                    sys::nftnl_chain_nlmsg_build_payload(h, c);
                }
                Ok(())
            },
        );
    }

    /// Removes every rule of a chain (a DELRULE without a handle).
    pub fn flush_chain(&mut self, table: &str, chain: &str) {
        let size = message(attr(table.len() + 1) + attr(chain.len() + 1) + attr(4));
        self.message(
            || format!("flush chain {table}/{chain}"),
            size,
            |b| {
                let r = Self::rule_object(table, chain)?;
                // SAFETY: `r` is a live rule; the header has room (checked).
                unsafe {
                    let h = b.header(libc::NFT_MSG_DELRULE, 0, format!("flush chain {table}/{chain}"));
                    sys::nftnl_rule_nlmsg_build_payload(h, r.as_ptr());
                }
                Ok(())
            },
        );
    }

    /// A rule object naming its table and chain.
    fn rule_object(table: &str, chain: &str) -> Result<Owned<sys::nftnl_rule>, BuildError> {
        check_name("table", table)?;
        check_name("chain", chain)?;
        let (t, n) = (cstr(table), cstr(chain));
        // SAFETY: a fresh rule, freed by Owned; setters copy their data.
        unsafe {
            let r = Owned::new(sys::nftnl_rule_alloc(), sys::nftnl_rule_free, "a rule")?;
            rc(sys::nftnl_rule_set_str(r.as_ptr(), sys::NFTNL_RULE_TABLE as u16, t.as_ptr()), "a rule's table")?;
            rc(sys::nftnl_rule_set_str(r.as_ptr(), sys::NFTNL_RULE_CHAIN as u16, n.as_ptr()), "a rule's chain")?;
            sys::nftnl_rule_set_u32(r.as_ptr(), sys::NFTNL_RULE_FAMILY as u16, FAMILY_INET as u32);
            Ok(r)
        }
    }

    /// Appends a rule with a comment (stored as nft's rule userdata, cut to
    /// fit at a character boundary).
    pub fn add_rule(&mut self, table: &str, chain: &str, exprs: &[Expr], comment: &str) {
        // nft's rule userdata: one TLV, type 0 (comment), NUL-terminated.
        let mut cut = comment.len().min(limits::USERDATA - 3);
        while !comment.is_char_boundary(cut) {
            cut -= 1;
        }
        let c = &comment.as_bytes()[..cut];
        let mut udata = Vec::with_capacity(c.len() + 3);
        udata.push(0u8);
        udata.push((c.len() + 1) as u8);
        udata.extend_from_slice(c);
        udata.push(0);
        let size = message(
            attr(table.len() + 1)
                + attr(chain.len() + 1)
                + attr(4)
                + attr(udata.len())
                + attr(exprs.iter().map(expr_size).sum()),
        );
        self.message(
            || format!("add rule {table}/{chain} ({comment})"),
            size,
            |b| {
                let r = Self::rule_object(table, chain)?;
                // SAFETY: `r` is live; setters copy; each expression is built
                // whole before the rule takes ownership of it.
                unsafe {
                    rc(
                        sys::nftnl_rule_set_data(
                            r.as_ptr(),
                            sys::NFTNL_RULE_USERDATA as u16,
                            udata.as_ptr().cast::<c_void>(),
                            udata.len() as u32,
                        ),
                        "a rule comment",
                    )?;
                    for e in exprs {
                        sys::nftnl_rule_add_expr(r.as_ptr(), build_expr(e)?.into_raw());
                    }
                    let flags = libc::NLM_F_CREATE | libc::NLM_F_APPEND;
                    let h = b.header(libc::NFT_MSG_NEWRULE, flags, format!("add rule {table}/{chain} ({comment})"));
                    sys::nftnl_rule_nlmsg_build_payload(h, r.as_ptr());
                }
                Ok(())
            },
        );
    }

    /// A set object naming its table and set.
    fn set_object(table: &str, name: &str) -> Result<Owned<sys::nftnl_set>, BuildError> {
        check_name("table", table)?;
        check_name("set", name)?;
        let (t, n) = (cstr(table), cstr(name));
        // SAFETY: a fresh set, freed by Owned; setters copy their data.
        unsafe {
            let s = Owned::new(sys::nftnl_set_alloc(), sys::nftnl_set_free, "a set")?;
            rc(sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_TABLE as u16, t.as_ptr()), "a set's table")?;
            rc(sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_NAME as u16, n.as_ptr()), "a set name")?;
            sys::nftnl_set_set_u32(s.as_ptr(), sys::NFTNL_SET_FAMILY as u16, FAMILY_INET as u32);
            Ok(s)
        }
    }

    /// Adds a set or map of the shape `spec` gives; `id` identifies it within
    /// this transaction, so later messages can refer to it before it exists.
    pub fn add_set(&mut self, table: &str, name: &str, spec: &SetSpec, id: u32) {
        let size = message(attr(table.len() + 1) + attr(name.len() + 1) + 8 * attr(8) + attr(spec.userdata.len()));
        self.message(
            || format!("add set {table}/{name}"),
            size,
            |b| {
                check_len(|| format!("the key of set {name}"), spec.key_len as usize, limits::DATA)?;
                check_len(|| format!("the userdata of set {name}"), spec.userdata.len(), limits::USERDATA)?;
                let s = Self::set_object(table, name)?;
                let s = s.as_ptr();
                // SAFETY: `s` is live (freed by Owned after building); setters copy.
                unsafe {
                    sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FLAGS as u16, spec.flags);
                    sys::nftnl_set_set_u32(s, sys::NFTNL_SET_KEY_TYPE as u16, spec.key_type);
                    sys::nftnl_set_set_u32(s, sys::NFTNL_SET_KEY_LEN as u16, spec.key_len);
                    if let Some(dt) = spec.data_type {
                        sys::nftnl_set_set_u32(s, sys::NFTNL_SET_DATA_TYPE as u16, dt);
                        sys::nftnl_set_set_u32(s, sys::NFTNL_SET_DATA_LEN as u16, 0);
                    }
                    sys::nftnl_set_set_u32(s, sys::NFTNL_SET_ID as u16, id);
                    if !spec.userdata.is_empty() {
                        rc(
                            sys::nftnl_set_set_data(
                                s,
                                sys::NFTNL_SET_USERDATA as u16,
                                spec.userdata.as_ptr().cast::<c_void>(),
                                spec.userdata.len() as u32,
                            ),
                            "a set's userdata",
                        )?;
                    }
                    let h = b.header(libc::NFT_MSG_NEWSET, libc::NLM_F_CREATE, format!("add set {table}/{name}"));
                    sys::nftnl_set_nlmsg_build_payload(h, s);
                }
                Ok(())
            },
        );
    }

    /// Deletes a set or map; no rule may still use it (the kernel answers EBUSY).
    pub fn delete_set(&mut self, table: &str, name: &str) {
        let size = message(attr(table.len() + 1) + attr(name.len() + 1) + attr(4));
        self.message(
            || format!("delete set {table}/{name}"),
            size,
            |b| {
                let s = Self::set_object(table, name)?;
                // SAFETY: `s` is live; the header has room (checked).
                unsafe {
                    let h = b.header(libc::NFT_MSG_DELSET, 0, format!("delete set {table}/{name}"));
                    sys::nftnl_set_nlmsg_build_payload(h, s.as_ptr());
                }
                Ok(())
            },
        );
    }

    /// Adds (or, with `add == false`, deletes) elements of a set or map, in
    /// as many messages as their size needs.
    pub fn elements(&mut self, table: &str, set: &str, add: bool, elems: &[Elem]) {
        let mut rest = elems;
        while !rest.is_empty() {
            // As many elements as fit `limits::ELEMENT_BYTES` (at least one).
            let (mut n, mut bytes) = (0, 0);
            while let Some(e) = rest.get(n) {
                let size = elem_size(e);
                if n > 0 && bytes + size > limits::ELEMENT_BYTES {
                    break;
                }
                bytes += size;
                n += 1;
            }
            let (chunk, later) = rest.split_at(n);
            rest = later;
            self.element_msg(table, set, add, chunk, bytes);
        }
    }

    fn element_msg(&mut self, table: &str, set: &str, add: bool, chunk: &[Elem], bytes: usize) {
        let verb = if add { "add" } else { "delete" };
        let label = || format!("{verb} {} elements of {table}/{set}", chunk.len());
        let size = message(attr(table.len() + 1) + attr(set.len() + 1) + attr(4) + attr(bytes));
        self.message(label, size, |b| {
            let s = Self::set_object(table, set)?;
            // SAFETY: `s` is live and owns every element added to it; each
            // element is built whole (Owned frees it on an early return)
            // before `s` takes it; setters copy their data.
            unsafe {
                for e in chunk {
                    check_len(|| format!("an element key of {set}"), e.key.len(), limits::DATA)?;
                    let el = Owned::new(sys::nftnl_set_elem_alloc(), free_set_elem, "a set element")?;
                    rc(
                        sys::nftnl_set_elem_set(
                            el.as_ptr(),
                            sys::NFTNL_SET_ELEM_KEY as u16,
                            e.key.as_ptr().cast::<c_void>(),
                            e.key.len() as u32,
                        ),
                        "an element key",
                    )?;
                    if e.flags != 0 {
                        sys::nftnl_set_elem_set_u32(el.as_ptr(), sys::NFTNL_SET_ELEM_FLAGS as u16, e.flags);
                    }
                    if let Some((code, chain)) = &e.verdict {
                        check_name("chain", chain)?;
                        sys::nftnl_set_elem_set_u32(el.as_ptr(), sys::NFTNL_SET_ELEM_VERDICT as u16, *code as u32);
                        let c = cstr(chain);
                        rc(
                            sys::nftnl_set_elem_set(
                                el.as_ptr(),
                                sys::NFTNL_SET_ELEM_CHAIN as u16,
                                c.as_ptr().cast::<c_void>(),
                                c.as_bytes_with_nul().len() as u32,
                            ),
                            "an element's verdict chain",
                        )?;
                    }
                    sys::nftnl_set_elem_add(s.as_ptr(), el.into_raw());
                }
                let (msg, flags) =
                    if add { (libc::NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE) } else { (libc::NFT_MSG_DELSETELEM, 0) };
                let h = b.header(msg, flags, label());
                sys::nftnl_set_elems_nlmsg_build_payload(h, s.as_ptr());
            }
            Ok(())
        });
    }

    /// Sends the batch as one transaction and collects every refusal.
    /// On any refusal the kernel aborts the whole transaction. No message
    /// asks for an ack, so success looks the same on every kernel (before
    /// 6.10 the end message's ack was never sent, and waiting for it failed
    /// every commit after a 5 s timeout).
    pub fn commit(mut self, conn: &mut Conn) -> Result<(), CommitError> {
        if let Some(e) = self.error.take() {
            return Err(CommitError::Build(e));
        }
        // SAFETY: the buffer has room for the end message.
        unsafe { sys::nftnl_batch_end(self.buffer(), self.seq) };
        self.advance();
        conn.set_timeout(std::time::Duration::from_secs(5)).map_err(CommitError::Io)?;
        // The whole batch must reach the kernel in ONE sendmsg: nfnetlink
        // handles a batch within a single message buffer, so pages sent one
        // by one would leave later messages outside the batch.
        // SAFETY: the iovecs point into the batch, which outlives this call;
        // msghdr and sockaddr_nl are fully initialised.
        let sent = unsafe {
            let n = sys::nftnl_batch_iovec_len(self.raw.as_ptr()) as usize;
            let mut iov = vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; n];
            sys::nftnl_batch_iovec(self.raw.as_ptr(), iov.as_mut_ptr(), n as u32);
            let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
            kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = (&mut kernel as *mut libc::sockaddr_nl).cast::<c_void>();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = n as _;
            // The socket must accept a message as large as the batch (as nft
            // does); FORCE lifts the sysctl cap for a privileged process.
            let total: usize = iov.iter().map(|v| v.iov_len).sum();
            let size = (total + 4096).min(i32::MAX as usize) as libc::c_int;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&conn.sock);
            for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
                let rc = libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const libc::c_int).cast::<c_void>(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
                if rc == 0 {
                    break;
                }
            }
            libc::sendmsg(fd, &msg, 0)
        };
        if sent < 0 {
            return Err(CommitError::Io(std::io::Error::last_os_error()));
        }
        let mut errors = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        // nfnetlink runs the whole batch inside sendmsg, so every answer is
        // queued on the socket by now: one error per refused message, and
        // (Linux 6.10 and later) the ack of the end message, which earlier
        // kernels never send. Draining without waiting reads them all on every
        // kernel, as nft does; nothing queued means the kernel took it all.
        while let Some(n) = conn.recv_queued(&mut buf).map_err(CommitError::Io)? {
            for (seq, errno) in parse_acks(&buf[..n]) {
                if errno != 0 {
                    let what = self
                        .labels
                        .iter()
                        .find(|(s, _)| *s == seq)
                        .map(|(_, l)| l.clone())
                        .unwrap_or_else(|| format!("message {seq}"));
                    errors.push(BatchError { what, errno });
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CommitError::Refused(errors))
        }
    }
}

/// (sequence number, errno) of each NLMSG_ERROR (ack) message in a buffer.
/// Pure byte parsing: nlmsghdr is 16 bytes, the error code follows.
pub fn parse_acks(mut buf: &[u8]) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if len < 16 || len > buf.len() {
            break;
        }
        if ty == libc::NLMSG_ERROR as u16 && len >= 20 {
            let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
            out.push((seq, -err));
        }
        let aligned = (len + 3) & !3;
        buf = &buf[aligned.min(buf.len())..];
    }
    out
}

/// An upper bound of an expression's size in a rule message.
fn expr_size(e: &Expr) -> usize {
    let data = match e {
        Expr::Cmp { data, .. } => data.len(),
        Expr::Bitwise { mask, xor, .. } => mask.len() + xor.len(),
        Expr::Lookup { set, .. } => set.len() + 1,
        Expr::Verdict { chain, .. } => chain.as_ref().map_or(0, |c| c.len() + 1),
        Expr::Log { prefix } => prefix.len() + 1,
        _ => 0,
    };
    attr(attr(12) + attr(8 * attr(8) + attr(data)))
}

/// An upper bound of an element's size in a NEWSETELEM message.
fn elem_size(e: &Elem) -> usize {
    attr(attr(attr(e.key.len())) + attr(4) + attr(e.verdict.as_ref().map_or(0, |(_, c)| attr(4) + attr(c.len() + 1))))
}

/// Builds one libnftnl expression, checked against the limits of the
/// fields libnftnl copies into.
fn build_expr(e: &Expr) -> Result<Owned<sys::nftnl_expr>, BuildError> {
    let name = match e {
        Expr::Meta { .. } | Expr::MetaSet { .. } => c"meta",
        Expr::Payload { .. } => c"payload",
        Expr::Cmp { .. } => c"cmp",
        Expr::Bitwise { .. } => c"bitwise",
        Expr::Ct { .. } => c"ct",
        Expr::Lookup { .. } => c"lookup",
        Expr::Verdict { .. } => c"immediate",
        Expr::Log { .. } => c"log",
    };
    match e {
        Expr::Cmp { data, .. } => check_len(|| "cmp data".into(), data.len(), limits::DATA)?,
        Expr::Bitwise { mask, xor, .. } => {
            check_len(|| "bitwise mask".into(), mask.len(), limits::DATA)?;
            check_len(|| "bitwise xor".into(), xor.len(), limits::DATA)?;
        }
        Expr::Lookup { set, .. } => check_name("set", set)?,
        Expr::Verdict { chain: Some(c), .. } => check_name("chain", c)?,
        Expr::Log { prefix } => check_len(|| "log prefix".into(), prefix.len(), limits::LOG_PREFIX)?,
        _ => {}
    }
    // SAFETY: the name is a valid expression type; a fresh expression, freed
    // by Owned unless the caller hands it to a rule; setters copy their
    // data, whose lengths were checked above against libnftnl's fields.
    unsafe {
        let x = Owned::new(sys::nftnl_expr_alloc(name.as_ptr()), sys::nftnl_expr_free, "an expression")?;
        let p = x.as_ptr();
        let set_data = |attr: u32, d: &[u8], what: &str| {
            rc(sys::nftnl_expr_set(p, attr as u16, d.as_ptr().cast::<c_void>(), d.len() as u32), what)
        };
        match e {
            Expr::Meta { key, dreg } => {
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_META_KEY as u16, *key);
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_META_DREG as u16, *dreg);
            }
            Expr::MetaSet { key, sreg } => {
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_META_KEY as u16, *key);
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_META_SREG as u16, *sreg);
            }
            Expr::Payload { base, offset, len, dreg } => {
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_DREG as u16, *dreg);
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_BASE as u16, *base);
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, *offset);
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_LEN as u16, *len);
            }
            Expr::Cmp { sreg, op, data } => {
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_CMP_SREG as u16, *sreg);
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_CMP_OP as u16, *op);
                set_data(sys::NFTNL_EXPR_CMP_DATA, data, "cmp data")?;
            }
            Expr::Bitwise { sreg, dreg, mask, xor } => {
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_BITWISE_SREG as u16, *sreg);
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_BITWISE_DREG as u16, *dreg);
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_BITWISE_LEN as u16, mask.len() as u32);
                set_data(sys::NFTNL_EXPR_BITWISE_MASK, mask, "bitwise mask")?;
                set_data(sys::NFTNL_EXPR_BITWISE_XOR, xor, "bitwise xor")?;
            }
            Expr::Ct { key, dreg } => {
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_CT_KEY as u16, *key);
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_CT_DREG as u16, *dreg);
            }
            Expr::Lookup { sreg, dreg, set, invert } => {
                let s = cstr(set);
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_LOOKUP_SREG as u16, *sreg);
                if let Some(d) = dreg {
                    sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_LOOKUP_DREG as u16, *d);
                }
                rc(sys::nftnl_expr_set_str(p, sys::NFTNL_EXPR_LOOKUP_SET as u16, s.as_ptr()), "a lookup's set")?;
                if *invert {
                    sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_LOOKUP_FLAGS as u16, 1);
                }
            }
            Expr::Verdict { code, chain } => {
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_IMM_DREG as u16, REG_VERDICT);
                sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_IMM_VERDICT as u16, *code as u32);
                if let Some(c) = chain {
                    let c = cstr(c);
                    rc(sys::nftnl_expr_set_str(p, sys::NFTNL_EXPR_IMM_CHAIN as u16, c.as_ptr()), "a verdict's chain")?;
                }
            }
            Expr::Log { prefix } => {
                let pre = cstr(prefix);
                rc(sys::nftnl_expr_set_str(p, sys::NFTNL_EXPR_LOG_PREFIX as u16, pre.as_ptr()), "a log prefix")?;
            }
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_parse_sequence_and_errno() {
        // Two NLMSG_ERROR messages: seq 5 ok, seq 6 ENOENT (-2).
        let mut buf = Vec::new();
        for (seq, err) in [(5u32, 0i32), (6, -2)] {
            buf.extend_from_slice(&36u32.to_ne_bytes());
            buf.extend_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
            buf.extend_from_slice(&0u16.to_ne_bytes());
            buf.extend_from_slice(&seq.to_ne_bytes());
            buf.extend_from_slice(&0u32.to_ne_bytes());
            buf.extend_from_slice(&err.to_ne_bytes());
            buf.extend_from_slice(&[0u8; 16]);
        }
        assert_eq!(parse_acks(&buf), vec![(5, 0), (6, 2)]);
    }

    #[test]
    fn values_over_a_limit_are_refused_before_libnftnl_copies_them() {
        let long = "x".repeat(limits::NAME + 1);
        type Build<'a> = Box<dyn Fn(&mut Batch) + 'a>;
        let cases: Vec<(&str, Build)> = vec![
            ("table name", Box::new(|b| b.add_table(&long))),
            ("chain name", Box::new(|b| b.add_chain("t", &long, None))),
            ("set name", Box::new(|b| b.delete_set("t", &long))),
            (
                "element key",
                Box::new(|b| b.elements("t", "s", true, &[Elem { key: vec![0; 65], flags: 0, verdict: None }])),
            ),
            (
                "verdict chain",
                Box::new(|b| {
                    b.elements(
                        "t",
                        "m",
                        true,
                        &[Elem { key: vec![0; 4], flags: 0, verdict: Some((NFT_JUMP, long.clone())) }],
                    )
                }),
            ),
            (
                "cmp data",
                Box::new(|b| b.add_rule("t", "c", &[Expr::Cmp { sreg: REG_1, op: 0, data: vec![0; 65] }], "x")),
            ),
            ("log prefix", Box::new(|b| b.add_rule("t", "c", &[Expr::Log { prefix: "p".repeat(128) }], "x"))),
        ];
        for (what, build) in cases {
            let mut b = Batch::new();
            b.add_table("t");
            build(&mut b);
            b.add_chain("t", "after", None);
            assert!(matches!(b.error(), Some(BuildError::TooLong { .. })), "{what}: {:?}", b.error());
            assert_eq!(b.len(), 1, "{what}: nothing is built after the refusal");
        }
    }

    #[test]
    fn a_message_larger_than_the_batch_room_is_refused_not_written() {
        // 1,000 comparisons of 64 bytes: over 100 KiB in one rule, which
        // libnftnl would write past its 64 KiB overrun room.
        let exprs: Vec<Expr> = (0..1000).map(|_| Expr::Cmp { sreg: REG_1, op: 0, data: vec![7; 64] }).collect();
        let mut b = Batch::new();
        b.add_rule("t", "c", &exprs, "big");
        match b.error() {
            Some(BuildError::TooLong { what, len, max }) => {
                assert!(what.contains("add rule t/c"), "{what}");
                assert!(*len > 100_000 && *max == limits::MESSAGE, "{len} {max}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn elements_are_split_by_size_so_long_verdict_chains_still_fit() {
        // 2,000 map elements whose verdicts name 200-byte chains: 200 of
        // them (the old fixed chunk) would be over 40 KiB of chain names.
        let chain = "c".repeat(200);
        let elems: Vec<Elem> = (0..2000u32)
            .map(|i| Elem { key: i.to_be_bytes().to_vec(), flags: 0, verdict: Some((NFT_GOTO, chain.clone())) })
            .collect();
        let mut b = Batch::new();
        b.elements("t", "m", true, &elems);
        assert!(b.error().is_none(), "{:?}", b.error());
        let per_message = limits::ELEMENT_BYTES / elem_size(&elems[0]);
        assert!(per_message < 200, "{per_message}");
        assert_eq!(b.len(), elems.len().div_ceil(per_message));
    }

    #[test]
    fn a_batch_counts_its_messages() {
        let mut b = Batch::new();
        b.add_table("t");
        b.add_chain("t", "c", None);
        b.add_rule("t", "c", &[Expr::Verdict { code: NF_ACCEPT, chain: None }], "x");
        assert_eq!(b.len(), 3);
    }
}
