//! A small SMTP server for the email tests: it speaks enough ESMTP for lettre (greeting,
//! EHLO/HELO, AUTH PLAIN and LOGIN, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP,
//! QUIT) and reports each connection, once it ends, with everything the client said.
//!
//! It can be told to expect credentials (then it advertises AUTH and refuses MAIL before
//! a successful AUTH), to refuse every RCPT with 550, or to stall after its greeting
//! (answer nothing and wait for the client to hang up). Every connection is bounded by a
//! deadline, and a read that sees the socket close ends it.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long one connection may last before the sink gives up on it.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// What the sink does.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// The `(user, password)` the client must authenticate with; AUTH is advertised only then.
    pub credentials: Option<(String, String)>,
    /// Answer every RCPT with `550`.
    pub reject_rcpt: bool,
    /// Send the greeting, then answer nothing.
    pub stall_after_greeting: bool,
}

/// One mail transaction.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message as sent, dot-unstuffed, lines ending in CRLF.
    pub data: String,
}

impl Transaction {
    /// The header section: everything before the first empty line.
    pub fn header_section(&self) -> &str {
        self.data.split_once("\r\n\r\n").map_or(self.data.as_str(), |(h, _)| h)
    }

    /// The body: everything after the first empty line.
    pub fn body(&self) -> &str {
        self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    /// Header lines, with folded continuation lines joined to their header.
    pub fn headers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for line in self.header_section().split("\r\n") {
            match out.last_mut() {
                Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
                _ => out.push(line.to_owned()),
            }
        }
        out
    }

    /// The value of the one header called `name` (panics when there are several).
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let found: Vec<String> = self
            .headers()
            .into_iter()
            .filter(|h| h.to_ascii_lowercase().starts_with(&prefix))
            .map(|h| h[prefix.len()..].trim().to_owned())
            .collect();
        assert!(found.len() <= 1, "one {name} header, got {found:?}");
        found.into_iter().next()
    }
}

/// One connection, as the sink saw it.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Every command line the client sent (AUTH payloads included, for the AUTH tests).
    pub commands: Vec<String>,
    /// The credentials the client authenticated with, if it did.
    pub auth: Option<(String, String)>,
    pub transactions: Vec<Transaction>,
    /// The client said QUIT.
    pub quit: bool,
}

/// A running sink.
#[derive(Debug)]
pub struct SmtpSink {
    addr: SocketAddr,
    sessions: mpsc::Receiver<Session>,
}

impl SmtpSink {
    /// A sink on a free loopback port.
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, sessions) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, behaviour) = (tx.clone(), behaviour.clone());
                tokio::spawn(async move {
                    let mut session = Session::default();
                    let _ =
                        tokio::time::timeout(CONNECTION_DEADLINE, serve(stream, &behaviour, &mut session))
                            .await;
                    let _ = tx.send(session).await;
                });
            }
        });
        Self { addr, sessions }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The next connection that ended (waits at most 5 s).
    pub async fn next_session(&mut self) -> Session {
        tokio::time::timeout(Duration::from_secs(5), self.sessions.recv())
            .await
            .expect("a connection ended within 5 s")
            .expect("the sink is running")
    }
}

/// Reads one line (CRLF or LF ended); `None` when the client closed the connection.
async fn read_line(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
    }
}

async fn reply(reader: &mut BufReader<TcpStream>, text: &str) -> Option<()> {
    reader.get_mut().write_all(text.as_bytes()).await.ok()
}

fn decode(b64: &str) -> String {
    String::from_utf8(STANDARD.decode(b64.trim()).unwrap_or_default()).unwrap_or_default()
}

/// Reads the client's AUTH exchange and returns the credentials it sent.
async fn read_auth(
    reader: &mut BufReader<TcpStream>,
    args: &str,
    session: &mut Session,
) -> Option<(String, String)> {
    let mut parts = args.splitn(2, ' ');
    let mechanism = parts.next().unwrap_or("").to_ascii_uppercase();
    let initial = parts.next().map(str::to_owned);
    match mechanism.as_str() {
        "PLAIN" => {
            let payload = match initial {
                Some(p) => p,
                None => {
                    reply(reader, "334 \r\n").await?;
                    read_line(reader).await?
                }
            };
            session.commands.push(payload.clone());
            let decoded = decode(&payload);
            let mut fields = decoded.split('\0').skip(1);
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        }
        "LOGIN" => {
            let user = match initial {
                Some(u) => u,
                None => {
                    reply(reader, "334 VXNlcm5hbWU6\r\n").await?;
                    read_line(reader).await?
                }
            };
            reply(reader, "334 UGFzc3dvcmQ6\r\n").await?;
            let password = read_line(reader).await?;
            session.commands.push(user.clone());
            session.commands.push(password.clone());
            Some((decode(&user), decode(&password)))
        }
        _ => None,
    }
}

/// Reads a DATA section up to the lone `.` line, undoing the client's dot-stuffing.
async fn read_data(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut data = String::new();
    loop {
        let line = read_line(reader).await?;
        if line == "." {
            return Some(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
        data.push_str("\r\n");
    }
}

async fn serve(stream: TcpStream, behaviour: &Behaviour, session: &mut Session) -> Option<()> {
    let mut reader = BufReader::new(stream);
    reply(&mut reader, "220 sink.test ESMTP ready\r\n").await?;
    if behaviour.stall_after_greeting {
        // Record what the client says, answer nothing, end when it hangs up.
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest).await;
        session.commands.extend(String::from_utf8_lossy(&rest).lines().map(str::to_owned));
        return Some(());
    }
    let mut authenticated = false;
    let mut current: Option<Transaction> = None;
    loop {
        let line = read_line(&mut reader).await?;
        session.commands.push(line.clone());
        let (verb, args) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                let auth = if behaviour.credentials.is_some() { "250-AUTH PLAIN LOGIN\r\n" } else { "" };
                reply(&mut reader, &format!("250-sink.test greets {args}\r\n{auth}250 SIZE 10240000\r\n"))
                    .await?;
            }
            "HELO" => reply(&mut reader, "250 sink.test\r\n").await?,
            "AUTH" => {
                let sent = read_auth(&mut reader, args, session).await;
                if sent.is_some() && sent == behaviour.credentials {
                    authenticated = true;
                    session.auth = sent;
                    reply(&mut reader, "235 2.7.0 Authentication successful\r\n").await?;
                } else {
                    session.auth = sent;
                    reply(&mut reader, "535 5.7.8 Authentication credentials invalid\r\n").await?;
                }
            }
            "MAIL" => {
                if behaviour.credentials.is_some() && !authenticated {
                    reply(&mut reader, "530 5.7.0 Authentication required\r\n").await?;
                    continue;
                }
                let from = args.split_once(':').map_or("", |(_, a)| a).trim();
                let address = from.split_whitespace().next().unwrap_or("");
                current = Some(Transaction {
                    mail_from: address.trim_matches(['<', '>']).to_owned(),
                    ..Default::default()
                });
                reply(&mut reader, "250 2.1.0 Ok\r\n").await?;
            }
            "RCPT" => {
                let Some(transaction) = current.as_mut() else {
                    reply(&mut reader, "503 5.5.1 MAIL first\r\n").await?;
                    continue;
                };
                if behaviour.reject_rcpt {
                    reply(&mut reader, "550 5.1.1 No such user here\r\n").await?;
                    continue;
                }
                let to = args.split_once(':').map_or("", |(_, a)| a).trim();
                transaction.rcpt_to.push(to.trim_matches(['<', '>']).to_owned());
                reply(&mut reader, "250 2.1.5 Ok\r\n").await?;
            }
            "DATA" => {
                let Some(mut transaction) = current.take().filter(|t| !t.rcpt_to.is_empty()) else {
                    reply(&mut reader, "503 5.5.1 RCPT first\r\n").await?;
                    continue;
                };
                reply(&mut reader, "354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                transaction.data = read_data(&mut reader).await?;
                session.transactions.push(transaction);
                reply(&mut reader, "250 2.0.0 Ok: queued\r\n").await?;
            }
            "RSET" => {
                current = None;
                reply(&mut reader, "250 2.0.0 Ok\r\n").await?;
            }
            "NOOP" => reply(&mut reader, "250 2.0.0 Ok\r\n").await?,
            "QUIT" => {
                session.quit = true;
                reply(&mut reader, "221 2.0.0 Bye\r\n").await?;
                return Some(());
            }
            _ => reply(&mut reader, "502 5.5.2 Command not recognized\r\n").await?,
        }
    }
}
