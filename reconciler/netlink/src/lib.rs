//! nf_tables over netlink: one transaction (batch) of table, chain, set,
//! element and rule messages, sent atomically, with a safe API.
//!
//! This is the only crate in netward with `unsafe` code: the calls into
//! libnftnl that build the messages and the socket that sends them. Nothing
//! here knows about policies; `netward::enforce::netlink` encodes rulesets
//! into `Expr`s and element bytes.

use std::ffi::{c_char, c_void, CString};
use std::fmt;
use std::ptr::NonNull;

use nftnl_sys as sys;
use nftnl_sys::libc;

pub mod conntrack;

/// `NFPROTO_INET`: tables for both IPv4 and IPv6.
pub const FAMILY_INET: u16 = 1;

/// Registers (nf_tables.h): the verdict register and the first data registers.
pub const REG_VERDICT: u32 = 0;
pub const REG_1: u32 = 1;
pub const REG_2: u32 = 2;

/// Verdict codes (netfilter.h / nf_tables.h).
pub const NF_DROP: i32 = 0;
pub const NF_ACCEPT: i32 = 1;
pub const NFT_JUMP: i32 = -3;
pub const NFT_GOTO: i32 = -4;
pub const NFT_RETURN: i32 = -5;

/// Set flags.
pub const SET_INTERVAL: u32 = 0x4;
pub const SET_MAP: u32 = 0x8;
/// Element flag: this element ends an interval.
pub const ELEM_INTERVAL_END: u32 = 0x1;
/// `NFT_DATA_VERDICT`: the data type of verdict maps.
pub const DATA_VERDICT: u32 = 0xffff_ff00;

/// One nf_tables expression of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `meta load KEY => dreg`.
    Meta { key: u32, dreg: u32 },
    /// `meta set KEY with sreg`.
    MetaSet { key: u32, sreg: u32 },
    /// `payload load LEN @ BASE + OFFSET => dreg`.
    Payload { base: u32, offset: u32, len: u32, dreg: u32 },
    /// `cmp OP sreg DATA` (op 0 = eq, 1 = neq).
    Cmp { sreg: u32, op: u32, data: Vec<u8> },
    /// `bitwise dreg = (sreg & MASK) ^ XOR`.
    Bitwise { sreg: u32, dreg: u32, mask: Vec<u8>, xor: Vec<u8> },
    /// `ct load KEY => dreg`.
    Ct { key: u32, dreg: u32 },
    /// `lookup sreg set NAME [dreg] [inverted]`.
    Lookup { sreg: u32, dreg: Option<u32>, set: String, invert: bool },
    /// `immediate reg 0 VERDICT [chain]`.
    Verdict { code: i32, chain: Option<String> },
    /// `log prefix PREFIX`.
    Log { prefix: String },
}

/// What a set is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetSpec {
    pub flags: u32,
    /// nft's datatype id of the key (concatenations packed 6 bits per part).
    pub key_type: u32,
    pub key_len: u32,
    /// For verdict maps.
    pub data_type: Option<u32>,
    /// nft's set userdata (key byte order, for `nft list` to print elements).
    pub userdata: Vec<u8>,
}

/// One set element: key bytes, flags, and a verdict for maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elem {
    pub key: Vec<u8>,
    pub flags: u32,
    pub verdict: Option<(i32, String)>,
}

/// A message the kernel refused, named by what it was doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchError {
    /// What the refused message did, e.g. `add rule netward/pol-in-x`.
    pub what: String,
    /// The errno the kernel answered with (negative errno as the kernel sends it, made positive).
    pub errno: i32,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, std::io::Error::from_raw_os_error(self.errno))
    }
}

impl std::error::Error for BatchError {}

/// Why a commit failed.
#[derive(Debug)]
pub enum CommitError {
    /// The socket could not be opened or used.
    Io(std::io::Error),
    /// The kernel refused the transaction; nothing was changed.
    Refused(Vec<BatchError>),
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitError::Io(e) => write!(f, "netlink socket: {e}"),
            CommitError::Refused(errs) => {
                let parts: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                write!(f, "{}", parts.join("; "))
            }
        }
    }
}

impl std::error::Error for CommitError {}

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

/// Elements per NEWSETELEM message, to stay well inside one batch page.
const ELEMS_PER_MESSAGE: usize = 200;

/// An nf_tables transaction being built.
pub struct Batch {
    raw: NonNull<sys::nftnl_batch>,
    seq: u32,
    /// Sequence number -> what the message does, for error messages.
    labels: Vec<(u32, String)>,
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
    pub fn new() -> Self {
        // 32 pages per batch page, as nft does; overrun room for one big message.
        // SAFETY: plain allocation; a null result is handled below.
        let raw = unsafe { sys::nftnl_batch_alloc(4096 * 32, 65536) };
        let raw = NonNull::new(raw).expect("libnftnl could not allocate a batch (out of memory)");
        let mut b = Batch { raw, seq: 1, labels: Vec::new() };
        // SAFETY: the buffer belongs to the batch and has room for a header.
        unsafe { sys::nftnl_batch_begin(b.buffer(), b.seq) };
        b.advance();
        b
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

    /// Writes a header for the next message; returns it and records the label.
    fn header(&mut self, msg: u16, flags: u16, what: String) -> *mut libc::nlmsghdr {
        self.labels.push((self.seq, what));
        // No NLM_F_ACK: the kernel reports every failure whether asked or not,
        // and answering every message would flood the socket on large batches.
        // SAFETY: the batch buffer has room for one message (nftnl_batch_update
        // guarantees the overrun space).
        unsafe { sys::nftnl_nlmsg_build_hdr(self.buffer(), msg, FAMILY_INET, flags, self.seq) }
    }

    /// Number of messages in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn table_msg(&mut self, table: &str, msg: i32, flags: i32, verb: &str) {
        let name = cstr(table);
        // SAFETY: alloc/free pair; setters copy the string.
        unsafe {
            let t = sys::nftnl_table_alloc();
            assert!(!t.is_null(), "libnftnl could not allocate a table");
            sys::nftnl_table_set_str(t, sys::NFTNL_TABLE_NAME as u16, name.as_ptr());
            sys::nftnl_table_set_u32(t, sys::NFTNL_TABLE_FAMILY as u16, FAMILY_INET as u32);
            let h = self.header(msg as u16, flags as u16, format!("{verb} table {table}"));
            sys::nftnl_table_nlmsg_build_payload(h, t);
            sys::nftnl_table_free(t);
        }
        self.advance();
    }

    pub fn add_table(&mut self, table: &str) {
        self.table_msg(table, libc::NFT_MSG_NEWTABLE, libc::NLM_F_CREATE, "add");
    }

    pub fn delete_table(&mut self, table: &str) {
        self.table_msg(table, libc::NFT_MSG_DELTABLE, 0, "delete");
    }

    /// Adds a chain; `base` is (hook number, priority) for a filter base chain
    /// with policy accept.
    pub fn add_chain(&mut self, table: &str, chain: &str, base: Option<(u32, i32)>) {
        let label = format!("add chain {table}/{chain}");
        self.chain_msg(table, chain, base, libc::NFT_MSG_NEWCHAIN, libc::NLM_F_CREATE, label);
    }

    pub fn delete_chain(&mut self, table: &str, chain: &str) {
        let label = format!("delete chain {table}/{chain}");
        self.chain_msg(table, chain, None, libc::NFT_MSG_DELCHAIN, 0, label);
    }

    fn chain_msg(&mut self, table: &str, chain: &str, base: Option<(u32, i32)>, msg: i32, flags: i32, label: String) {
        let (t, n, ty) = (cstr(table), cstr(chain), cstr("filter"));
        // SAFETY: alloc/free pair; setters copy.
        unsafe {
            let c = sys::nftnl_chain_alloc();
            assert!(!c.is_null(), "libnftnl could not allocate a chain");
            sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_TABLE as u16, t.as_ptr());
            sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_NAME as u16, n.as_ptr());
            sys::nftnl_chain_set_u32(c, sys::NFTNL_CHAIN_FAMILY as u16, FAMILY_INET as u32);
            if let Some((hook, prio)) = base {
                sys::nftnl_chain_set_u32(c, sys::NFTNL_CHAIN_HOOKNUM as u16, hook);
                sys::nftnl_chain_set_s32(c, sys::NFTNL_CHAIN_PRIO as u16, prio);
                sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_TYPE as u16, ty.as_ptr());
                sys::nftnl_chain_set_u32(c, sys::NFTNL_CHAIN_POLICY as u16, NF_ACCEPT as u32);
            }
            let h = self.header(msg as u16, flags as u16, label);
            sys::nftnl_chain_nlmsg_build_payload(h, c);
            sys::nftnl_chain_free(c);
        }
        self.advance();
    }

    /// Removes every rule of a chain (a DELRULE without a handle).
    pub fn flush_chain(&mut self, table: &str, chain: &str) {
        let (t, n) = (cstr(table), cstr(chain));
        // SAFETY: alloc/free pair; setters copy.
        unsafe {
            let r = sys::nftnl_rule_alloc();
            assert!(!r.is_null(), "libnftnl could not allocate a rule");
            sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_TABLE as u16, t.as_ptr());
            sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_CHAIN as u16, n.as_ptr());
            sys::nftnl_rule_set_u32(r, sys::NFTNL_RULE_FAMILY as u16, FAMILY_INET as u32);
            let h = self.header(libc::NFT_MSG_DELRULE as u16, 0, format!("flush chain {table}/{chain}"));
            sys::nftnl_rule_nlmsg_build_payload(h, r);
            sys::nftnl_rule_free(r);
        }
        self.advance();
    }

    /// Appends a rule with a comment (stored as nft's rule userdata).
    pub fn add_rule(&mut self, table: &str, chain: &str, exprs: &[Expr], comment: &str) {
        let (t, n) = (cstr(table), cstr(chain));
        // nft's rule userdata: one TLV, type 0 (comment), NUL-terminated.
        let mut udata = Vec::with_capacity(comment.len() + 3);
        let c = &comment.as_bytes()[..comment.len().min(250)];
        udata.push(0u8);
        udata.push((c.len() + 1) as u8);
        udata.extend_from_slice(c);
        udata.push(0);
        // SAFETY: alloc/free pair; the rule takes ownership of each added
        // expression; setters copy their data.
        unsafe {
            let r = sys::nftnl_rule_alloc();
            assert!(!r.is_null(), "libnftnl could not allocate a rule");
            sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_TABLE as u16, t.as_ptr());
            sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_CHAIN as u16, n.as_ptr());
            sys::nftnl_rule_set_u32(r, sys::NFTNL_RULE_FAMILY as u16, FAMILY_INET as u32);
            sys::nftnl_rule_set_data(
                r,
                sys::NFTNL_RULE_USERDATA as u16,
                udata.as_ptr().cast::<c_void>(),
                udata.len() as u32,
            );
            for e in exprs {
                sys::nftnl_rule_add_expr(r, build_expr(e));
            }
            let flags = (libc::NLM_F_CREATE | libc::NLM_F_APPEND) as u16;
            let h = self.header(libc::NFT_MSG_NEWRULE as u16, flags, format!("add rule {table}/{chain} ({comment})"));
            sys::nftnl_rule_nlmsg_build_payload(h, r);
            sys::nftnl_rule_free(r);
        }
        self.advance();
    }

    fn set_object(table: &CString, name: &CString) -> *mut sys::nftnl_set {
        // SAFETY: plain allocation and copying setters.
        unsafe {
            let s = sys::nftnl_set_alloc();
            assert!(!s.is_null(), "libnftnl could not allocate a set");
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, name.as_ptr());
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FAMILY as u16, FAMILY_INET as u32);
            s
        }
    }

    pub fn add_set(&mut self, table: &str, name: &str, spec: &SetSpec, id: u32) {
        let (t, n) = (cstr(table), cstr(name));
        let s = Self::set_object(&t, &n);
        // SAFETY: `s` is a live set; setters copy; freed after building.
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
                sys::nftnl_set_set_data(
                    s,
                    sys::NFTNL_SET_USERDATA as u16,
                    spec.userdata.as_ptr().cast::<c_void>(),
                    spec.userdata.len() as u32,
                );
            }
            let h =
                self.header(libc::NFT_MSG_NEWSET as u16, libc::NLM_F_CREATE as u16, format!("add set {table}/{name}"));
            sys::nftnl_set_nlmsg_build_payload(h, s);
            sys::nftnl_set_free(s);
        }
        self.advance();
    }

    pub fn delete_set(&mut self, table: &str, name: &str) {
        let (t, n) = (cstr(table), cstr(name));
        let s = Self::set_object(&t, &n);
        // SAFETY: `s` is live; freed after building.
        unsafe {
            let h = self.header(libc::NFT_MSG_DELSET as u16, 0, format!("delete set {table}/{name}"));
            sys::nftnl_set_nlmsg_build_payload(h, s);
            sys::nftnl_set_free(s);
        }
        self.advance();
    }

    /// Adds (or, with `add == false`, deletes) elements of a set or map.
    pub fn elements(&mut self, table: &str, set: &str, add: bool, elems: &[Elem]) {
        let (t, n) = (cstr(table), cstr(set));
        for chunk in elems.chunks(ELEMS_PER_MESSAGE) {
            let s = Self::set_object(&t, &n);
            // SAFETY: `s` is live and owns every element added to it; the
            // element setters copy their data; `s` is freed after building.
            unsafe {
                for e in chunk {
                    let el = sys::nftnl_set_elem_alloc();
                    assert!(!el.is_null(), "libnftnl could not allocate a set element");
                    sys::nftnl_set_elem_set(
                        el,
                        sys::NFTNL_SET_ELEM_KEY as u16,
                        e.key.as_ptr().cast::<c_void>(),
                        e.key.len() as u32,
                    );
                    if e.flags != 0 {
                        sys::nftnl_set_elem_set_u32(el, sys::NFTNL_SET_ELEM_FLAGS as u16, e.flags);
                    }
                    if let Some((code, chain)) = &e.verdict {
                        sys::nftnl_set_elem_set_u32(el, sys::NFTNL_SET_ELEM_VERDICT as u16, *code as u32);
                        let c = cstr(chain);
                        sys::nftnl_set_elem_set(
                            el,
                            sys::NFTNL_SET_ELEM_CHAIN as u16,
                            c.as_ptr().cast::<c_void>(),
                            c.as_bytes_with_nul().len() as u32,
                        );
                    }
                    sys::nftnl_set_elem_add(s, el);
                }
                let (msg, flags, verb) = if add {
                    (libc::NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE, "add")
                } else {
                    (libc::NFT_MSG_DELSETELEM, 0, "delete")
                };
                let h =
                    self.header(msg as u16, flags as u16, format!("{verb} {} elements of {table}/{set}", chunk.len()));
                sys::nftnl_set_elems_nlmsg_build_payload(h, s);
                sys::nftnl_set_free(s);
            }
            self.advance();
        }
    }

    /// Sends the batch as one transaction and collects every refusal.
    /// On any refusal the kernel aborts the whole transaction. No message
    /// asks for an ack, so success looks the same on every kernel (before
    /// 6.10 the end message's ack was never sent, and waiting for it failed
    /// every commit after a 5 s timeout).
    pub fn commit(mut self, conn: &mut Conn) -> Result<(), CommitError> {
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

/// Builds one libnftnl expression; the caller takes ownership.
unsafe fn build_expr(e: &Expr) -> *mut sys::nftnl_expr {
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
    // SAFETY: the name is a valid expression type; setters copy their data.
    unsafe {
        let x = sys::nftnl_expr_alloc(name.as_ptr());
        assert!(!x.is_null(), "libnftnl could not allocate an expression");
        let set_data = |attr: u32, d: &[u8]| {
            sys::nftnl_expr_set(x, attr as u16, d.as_ptr().cast::<c_void>(), d.len() as u32);
        };
        match e {
            Expr::Meta { key, dreg } => {
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_META_KEY as u16, *key);
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_META_DREG as u16, *dreg);
            }
            Expr::MetaSet { key, sreg } => {
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_META_KEY as u16, *key);
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_META_SREG as u16, *sreg);
            }
            Expr::Payload { base, offset, len, dreg } => {
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_PAYLOAD_DREG as u16, *dreg);
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_PAYLOAD_BASE as u16, *base);
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, *offset);
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_PAYLOAD_LEN as u16, *len);
            }
            Expr::Cmp { sreg, op, data } => {
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_CMP_SREG as u16, *sreg);
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_CMP_OP as u16, *op);
                set_data(sys::NFTNL_EXPR_CMP_DATA, data);
            }
            Expr::Bitwise { sreg, dreg, mask, xor } => {
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_BITWISE_SREG as u16, *sreg);
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_BITWISE_DREG as u16, *dreg);
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_BITWISE_LEN as u16, mask.len() as u32);
                set_data(sys::NFTNL_EXPR_BITWISE_MASK, mask);
                set_data(sys::NFTNL_EXPR_BITWISE_XOR, xor);
            }
            Expr::Ct { key, dreg } => {
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_CT_KEY as u16, *key);
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_CT_DREG as u16, *dreg);
            }
            Expr::Lookup { sreg, dreg, set, invert } => {
                let s = cstr(set);
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_LOOKUP_SREG as u16, *sreg);
                if let Some(d) = dreg {
                    sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_LOOKUP_DREG as u16, *d);
                }
                sys::nftnl_expr_set_str(x, sys::NFTNL_EXPR_LOOKUP_SET as u16, s.as_ptr());
                if *invert {
                    sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_LOOKUP_FLAGS as u16, 1);
                }
            }
            Expr::Verdict { code, chain } => {
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_IMM_DREG as u16, REG_VERDICT);
                sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_IMM_VERDICT as u16, *code as u32);
                if let Some(c) = chain {
                    let c = cstr(c);
                    sys::nftnl_expr_set_str(x, sys::NFTNL_EXPR_IMM_CHAIN as u16, c.as_ptr());
                }
            }
            Expr::Log { prefix } => {
                let p = cstr(prefix);
                sys::nftnl_expr_set_str(x, sys::NFTNL_EXPR_LOG_PREFIX as u16, p.as_ptr());
            }
        }
        x
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
    fn a_batch_counts_its_messages() {
        let mut b = Batch::new();
        b.add_table("t");
        b.add_chain("t", "c", None);
        b.add_rule("t", "c", &[Expr::Verdict { code: NF_ACCEPT, chain: None }], "x");
        assert_eq!(b.len(), 3);
    }
}
