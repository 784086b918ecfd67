//! `cix users add | list | remove`: the web console's accounts (roles viewer, approver,
//! admin), through the node's admin API. A password is read from standard input (its first
//! line) or, on a terminal, from a prompt that does not echo: never from the command line,
//! where other users of the machine could read it in the process list.

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context, Result};
use cix_node::Home;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::Out;

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Create a console account; the password is read from standard input or a prompt.
    Add {
        /// Login name: a-z, 0-9, '.', '_' and '-', starting with a letter.
        name: String,
        /// viewer (reads everything), approver (also approves and denies requests) or
        /// admin (everything the console offers).
        #[arg(long)]
        role: String,
    },
    /// List the console accounts with their roles.
    List,
    /// Remove a console account; its open sessions end at once.
    Remove {
        /// Login name.
        name: String,
    },
}

fn read_password() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password("password: ").context("cannot read the password")?;
        let again =
            rpassword::prompt_password("password again: ").context("cannot read the password")?;
        if first != again {
            bail!("the two passwords differ");
        }
        return Ok(first);
    }
    let mut line = String::new();
    // At most one line, bounded: the node refuses longer passwords anyway.
    let mut limited = std::io::Read::take(
        stdin.lock(),
        cix_node::console::limits::MAX_PASSWORD_BYTES as u64 + 2,
    );
    let mut reader = std::io::BufReader::new(&mut limited);
    reader
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        bail!("no password on standard input (give it as the first line)");
    }
    Ok(password.to_string())
}

fn print_user(v: &Value, verb: &str, out: &mut Out) -> Result<()> {
    let text = format!(
        "{verb}{}  {}",
        v["name"].as_str().unwrap_or("-"),
        v["role"].as_str().unwrap_or("-")
    );
    out.message(v, &text)
}

pub(crate) fn users(home: &Home, cmd: UsersCommand, out: &mut Out) -> Result<()> {
    match cmd {
        UsersCommand::Add { name, role } => {
            // Check what can be checked before asking for the password.
            cix_node::console::users::check_name(&name)?;
            let role: cix_node::console::users::Role = role.parse()?;
            let client = Client::connect(home)?;
            let password = read_password()?;
            cix_node::console::users::check_password(&password)?;
            let v: Value = client.post(
                "/v1/users",
                &json!({ "name": name, "role": role, "password": password }),
            )?;
            print_user(&v, "added ", out)
        }
        UsersCommand::List => {
            let client = Client::connect(home)?;
            let lines: Vec<Value> = client.get("/v1/users")?;
            if out.is_json() {
                for l in &lines {
                    out.line(l)?;
                }
                return Ok(());
            }
            if lines.is_empty() {
                return out
                    .text_line("no console users (add one with `cix users add NAME --role ROLE`)");
            }
            let mut t = crate::output::table(&["name", "role", "created"]);
            for l in &lines {
                let created = l["created"]
                    .as_i64()
                    .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| "-".into());
                t.add_row(vec![
                    l["name"].as_str().unwrap_or("-").to_string(),
                    l["role"].as_str().unwrap_or("-").to_string(),
                    created,
                ]);
            }
            out.text_line(&t.to_string())
        }
        UsersCommand::Remove { name } => {
            let client = Client::connect(home)?;
            let v: Value = client.post(&format!("/v1/users/{name}/remove"), &json!({}))?;
            print_user(&v, "removed ", out)
        }
    }
}
