//! netward's probe: a tiny server and client for connectivity checks inside
//! network namespaces (run through `ip netns exec`).
//!
//!   netward-probe serve --tcp 8080,5432 --udp 53
//!   netward-probe connect tcp 10.0.0.2 8080 [--timeout-ms 500]
//!   netward-probe connect udp 10.0.0.2 53 [--timeout-ms 500] [--bind SRC]
//!   netward-probe serve --echo 9000       (TCP echo, for long-lived flows)
//!   netward-probe hold tcp|udp 10.0.0.2 9000 --ms 3000
//!
//! `connect` exits 0 when the connection was made (UDP: the echo came back),
//! 1 on a timeout (denied), 2 when refused (reached, nothing listening),
//! 3 on any other error. It prints one word saying which.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

/// A comma-separated port list ("" is none); a value that is not a port
/// (1-65535) is an error, never silently dropped.
fn ports(arg: Option<&String>) -> Result<Vec<u16>, String> {
    let Some(list) = arg else { return Ok(Vec::new()) };
    list.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("not a port: {p:?}")),
        })
        .collect()
}

const USAGE: &str = "usage: netward-probe serve [--tcp P,..] [--udp P,..] [--sink P,..] [--echo P,..]
       netward-probe connect tcp|udp IP PORT [--timeout-ms N]
       netward-probe hold tcp|udp IP PORT [--ms N]
       netward-probe bench connect|udp|bulk IP PORT N";

fn serve(args: &[String]) -> ExitCode {
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    let mut sink = Vec::new();
    let mut echo = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let list = match args[i].as_str() {
            "--tcp" => &mut tcp,
            "--udp" => &mut udp,
            "--sink" => &mut sink,
            "--echo" => &mut echo,
            other => {
                eprintln!("netward-probe serve: unknown option {other:?}\n{USAGE}");
                return ExitCode::from(3);
            }
        };
        match ports(args.get(i + 1)) {
            Ok(p) => *list = p,
            Err(e) => {
                eprintln!("netward-probe serve {}: {e}", args[i]);
                return ExitCode::from(3);
            }
        }
        i += 2;
    }
    let mut handles = Vec::new();
    // Sink ports read everything a client sends (bulk-transfer benchmarks),
    // over TCP and UDP; a UDP sink never answers, so a flow to it stays NEW
    // in conntrack and every datagram runs the policy chains.
    for p in sink {
        if let Ok(sock) = UdpSocket::bind(format!("0.0.0.0:{p}")) {
            handles.push(std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while sock.recv(&mut buf).is_ok() {}
            }));
        }
        let Ok(l) = TcpListener::bind(format!("0.0.0.0:{p}")) else { continue };
        handles.push(std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let mut buf = vec![0u8; 1 << 16];
                    while matches!(std::io::Read::read(&mut s, &mut buf), Ok(n) if n > 0) {}
                });
            }
        }));
    }
    // Echo ports answer every byte, for as long as the connection lasts.
    for p in echo {
        for bind in [format!("0.0.0.0:{p}"), format!("[::]:{p}")] {
            let Ok(l) = TcpListener::bind(&bind) else { continue };
            handles.push(std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    std::thread::spawn(move || {
                        let mut s = s;
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = std::io::Read::read(&mut s, &mut buf) {
                            if n == 0 || s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
            }));
        }
    }
    for p in tcp {
        // Both families: an IPv6 socket with v6only, and an IPv4 one.
        for bind in [format!("0.0.0.0:{p}"), format!("[::]:{p}")] {
            let Ok(l) = TcpListener::bind(&bind) else { continue };
            handles.push(std::thread::spawn(move || {
                for mut s in l.incoming().flatten() {
                    let _ = s.write_all(b"ok\n");
                }
            }));
        }
    }
    for p in udp {
        for bind in [format!("0.0.0.0:{p}"), format!("[::]:{p}")] {
            let Ok(sock) = UdpSocket::bind(&bind) else { continue };
            handles.push(std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }));
        }
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    for h in handles {
        let _ = h.join();
    }
    ExitCode::SUCCESS
}

fn connect(args: &[String]) -> ExitCode {
    let (Some(proto), Some(ip), Some(port)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: netward-probe connect tcp|udp IP PORT [--timeout-ms N]");
        return ExitCode::from(3);
    };
    let timeout = args
        .iter()
        .position(|a| a == "--timeout-ms")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_millis(500));
    let (Ok(ip), Ok(port)) = (ip.parse::<IpAddr>(), port.parse::<u16>()) else {
        println!("error");
        return ExitCode::from(3);
    };
    let addr = SocketAddr::new(ip, port);
    let (word, code) = match proto.as_str() {
        "tcp" => match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => ("allowed", 0),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => ("denied", 1),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => ("refused", 2),
            Err(_) => ("error", 3),
        },
        "udp" => {
            // --bind ADDR sends from that source address (spoofing tests).
            let bind = args
                .iter()
                .position(|a| a == "--bind")
                .and_then(|i| args.get(i + 1))
                .map(|a| format!("{a}:0"))
                .unwrap_or_else(|| if ip.is_ipv4() { "0.0.0.0:0".into() } else { "[::]:0".into() });
            match UdpSocket::bind(bind.as_str()).and_then(|s| {
                s.set_read_timeout(Some(timeout))?;
                s.connect(addr)?;
                s.send(b"probe")?;
                let mut buf = [0u8; 16];
                s.recv(&mut buf)
            }) {
                Ok(_) => ("allowed", 0),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    ("denied", 1)
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => ("refused", 2),
                Err(_) => ("error", 3),
            }
        }
        _ => ("error", 3),
    };
    println!("{word}");
    ExitCode::from(code)
}

/// `bench connect IP PORT N`: N sequential TCP connections, each read to
/// the server's close; prints connects/s.
/// `bench udp IP PORT N`: N datagrams of one flow that is never answered
/// (each is NEW to conntrack); prints datagrams/s sent.
/// `bench bulk IP PORT MB`: sends MB mebibytes over one connection; prints MiB/s.
/// Holds one connection (TCP to an echo port, or a UDP flow) for `--ms`,
/// sending a byte every 50 ms and waiting up to 200 ms for its echo; prints
/// `connected=BOOL last_echo_ms=N echoes=K` (N: ms from the start to the
/// last echo) so a test can tell when the flow stopped.
fn hold(args: &[String]) -> ExitCode {
    let (Some(proto), Some(ip), Some(port)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: netward-probe hold tcp|udp IP PORT --ms N");
        return ExitCode::from(3);
    };
    let total = args
        .iter()
        .position(|a| a == "--ms")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(3));
    let (Ok(ip), Ok(port)) = (ip.parse::<IpAddr>(), port.parse::<u16>()) else {
        return ExitCode::from(3);
    };
    let addr = SocketAddr::new(ip, port);
    let start = std::time::Instant::now();
    let wait = Some(Duration::from_millis(200));
    // One round trip: send a byte, get it back.
    let mut round: Box<dyn FnMut() -> bool> = match proto.as_str() {
        "tcp" => match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(wait);
                Box::new(move || {
                    let mut b = [0u8; 1];
                    s.write_all(b"x").is_ok() && matches!(std::io::Read::read(&mut s, &mut b), Ok(1))
                })
            }
            Err(_) => {
                println!("connected=false last_echo_ms=0 echoes=0");
                return ExitCode::from(1);
            }
        },
        "udp" => {
            let bind = if ip.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let Ok(s) = UdpSocket::bind(bind).and_then(|s| s.connect(addr).map(|()| s)) else {
                return ExitCode::from(3);
            };
            let _ = s.set_read_timeout(wait);
            Box::new(move || {
                let mut b = [0u8; 16];
                s.send(b"x").is_ok() && s.recv(&mut b).is_ok()
            })
        }
        _ => return ExitCode::from(3),
    };
    let (mut last, mut echoes) = (0u128, 0u32);
    while start.elapsed() < total {
        let t = std::time::Instant::now();
        if round() {
            echoes += 1;
            last = start.elapsed().as_millis();
        }
        std::thread::sleep(Duration::from_millis(50).saturating_sub(t.elapsed()));
    }
    println!("connected={} last_echo_ms={last} echoes={echoes}", echoes > 0);
    ExitCode::SUCCESS
}

fn bench(args: &[String]) -> ExitCode {
    let (Some(mode), Some(ip), Some(port), Some(n)) = (args.first(), args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: netward-probe bench connect|udp|bulk IP PORT N");
        return ExitCode::from(3);
    };
    let (Ok(ip), Ok(port), Ok(n)) = (ip.parse::<IpAddr>(), port.parse::<u16>(), n.parse::<u64>()) else {
        return ExitCode::from(3);
    };
    let addr = SocketAddr::new(ip, port);
    let start = std::time::Instant::now();
    match mode.as_str() {
        "connect" => {
            // Each connection waits for the server's answer and close, so the
            // loop never outruns the server's accept queue (an overflow
            // drops a handshake and costs a one-second retransmit, which
            // is the server's speed, not the path's), and the server, which
            // closes first, holds the TIME_WAIT, not the client's ports.
            for _ in 0..n {
                let answered = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok_and(|mut s| {
                    let mut answer = Vec::new();
                    std::io::Read::read_to_end(&mut s, &mut answer).is_ok() && answer == b"ok\n"
                });
                if !answered {
                    println!("error");
                    return ExitCode::from(1);
                }
            }
            println!("{:.1}", n as f64 / start.elapsed().as_secs_f64());
        }
        "udp" => {
            let Ok(s) = UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect(addr).map(|()| s)) else {
                println!("error");
                return ExitCode::from(1);
            };
            for _ in 0..n {
                // A full socket buffer or an ICMP error: try the next one.
                let _ = s.send(b"netward-bench");
            }
            println!("{:.1}", n as f64 / start.elapsed().as_secs_f64());
        }
        "bulk" => {
            let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
                println!("error");
                return ExitCode::from(1);
            };
            let chunk = vec![0x5au8; 1 << 16];
            for _ in 0..n * 16 {
                if s.write_all(&chunk).is_err() {
                    println!("error");
                    return ExitCode::from(1);
                }
            }
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut rest = Vec::new();
            let _ = std::io::Read::read_to_end(&mut s, &mut rest);
            println!("{:.1}", n as f64 / start.elapsed().as_secs_f64());
        }
        _ => return ExitCode::from(3),
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("connect") => connect(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("hold") => hold(&args[1..]),
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("--version" | "-V") => {
            println!("netward-probe {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(3)
        }
    }
}
