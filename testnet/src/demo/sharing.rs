//! Steps 2 to 5: open data, shared data with public and named access, and closed data.

use anyhow::{Context, Result};
use cix_node::access;
use cix_node::store::Decision;
use cix_node::NodeEvent;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::data::{self, ENVIRONMENT, TRANSPORT, UTILITY};
use super::report::RequestReport;
use super::{human, within, Dataset, Demo};

/// The purpose the transport authority gives for the CO2 record (step 2).
const PURPOSE_PUBLIC: &str = "Compare the long-term CO2 trend with traffic volumes in the \
                              transport authority's annual report";
/// The purpose the environment office gives for the car-share figures (step 3).
const PURPOSE_APPROVED: &str = "Estimate the emissions avoided by car sharing in the city's \
                                air-quality model";
/// The purpose the utility gives for the same figures (step 4).
const PURPOSE_DENIED: &str = "Choose sites for new electric-vehicle chargers near car-share \
                              hot spots";
/// Why the transport authority turns the utility down (step 4).
const DENIAL_REASON: &str = "Our agreement with the car-share operator allows these figures to \
                             be used for air-quality work only; charger siting is outside it.";

impl Demo {
    pub(super) async fn open_and_public(&mut self) -> Result<()> {
        self.say
            .step(2, "Open data, and shared data with public access");
        let open = self.dataset(&data::IOWA_ELECTRICITY)?;
        self.say.para(
            2,
            &format!(
                "Open data (ISO 37156 5.5.4) may be used by anyone for any purpose, so no request \
                 is needed. {} fetches \"{}\" straight from {}.",
                self.name(ENVIRONMENT),
                open.title,
                self.name(open.owner)
            ),
        );
        self.fetch_verified(2, ENVIRONMENT, &open).await?;

        let public = self.dataset(&data::CO2)?;
        let requester = TRANSPORT;
        let terms = self.agencies[requester]
            .node
            .shared
            .store
            .latest_entry(&public.id)?
            .and_then(|e| e.entry.iso.terms)
            .unwrap_or_default();
        self.say.blank();
        self.say.para(
            2,
            &format!(
                "Shared data with public access (5.5.3) goes to anyone who accepts its terms. {} \
                 reads the terms of \"{}\" in its catalogue:",
                self.name(requester),
                public.title
            ),
        );
        self.say.para(6, &format!("\"{terms}\""));
        self.say.para(
            2,
            &format!(
                "It accepts them and asks {} for access, with the purpose \"{PURPOSE_PUBLIC}\".",
                self.name(public.owner)
            ),
        );
        let node = self.node(requester);
        let outcome = within(
            self.timeout,
            "for the answer to an access request",
            access::request(&node, public.id, PURPOSE_PUBLIC, true),
        )
        .await?
        .context("the access request failed")?;
        let check = "shared-public access is granted at once to a requester accepting the terms";
        if outcome.status != "granted" {
            let detail = format!("the owner answered {} {:?}", outcome.status, outcome.reason);
            return Err(self.fail(2, check, detail));
        }
        self.expect(2, check, true, "granted".into());
        self.say.para(
            2,
            "The owner's node answers at once, with no person involved: granted. The grant is a \
             capability token (UCAN) signed by the owner, naming the requester, the fetch \
             command and this one dataset.",
        );
        self.report.requests.push(RequestReport {
            step: 2,
            queue_id: String::new(),
            dataset: public.id_text(),
            title: public.title.clone(),
            owner: self.name(public.owner).to_string(),
            requester: self.name(requester).to_string(),
            purpose: PURPOSE_PUBLIC.to_string(),
            first_answer: outcome.status.clone(),
            outcome: "granted".into(),
            reason: None,
        });
        self.fetch_verified(2, requester, &public).await?;
        Ok(())
    }

    pub(super) async fn named_approved(&mut self) -> Result<()> {
        self.say
            .step(3, "Named access: asked, queued, approved, fetched");
        let named = self.dataset(&data::CARSHARE)?;
        let requester = ENVIRONMENT;
        self.say.para(
            2,
            &format!(
                "Shared data with named access (5.5.3) goes only to organisations its owner \
                 names, so every request waits for a person at the owner's node to decide. {} \
                 asks {} for \"{}\", stating its purpose:",
                self.name(requester),
                self.name(named.owner),
                named.title
            ),
        );
        self.say.para(6, &format!("\"{PURPOSE_APPROVED}\""));
        let queue_id = self
            .ask_named(3, requester, &named, PURPOSE_APPROVED)
            .await?;

        self.fetch_refused(
            3,
            "pending",
            requester,
            &named,
            "the fetch is refused while the request waits for the owner",
            |m| m.contains("waiting") || m.contains("approval"),
        )
        .await?;
        self.say.para(
            2,
            "Trying to fetch it now is refused: the requester's node asks the owner again and \
             is told the request is still waiting:",
        );
        self.say_last_refusal();

        self.show_queue(3, named.owner, &queue_id)?;
        self.say.para(
            2,
            "The owner keeps the stated purpose with the request, so any grant rests on a \
             recorded purpose and its limits (8.3.4).",
        );
        let owner = self.node(named.owner);
        let approved = access::approve(&owner.shared, &queue_id);
        let check = "the owner approves the queued request";
        if let Err(e) = approved {
            return Err(self.fail(3, check, format!("{e:#}")));
        }
        self.expect(3, check, true, format!("request {queue_id} approved"));
        self.say.para(
            2,
            &format!(
                "{}'s operator approves request {queue_id} (what `cix requests approve \
                 {queue_id}` does). The node signs a capability token (UCAN) for {}: fetch this \
                 dataset only, valid for {} days.",
                self.name(named.owner),
                self.name(requester),
                owner.shared.config.grant_days
            ),
        );
        self.say.para(
            2,
            "The requester fetches again. Its node collects the grant, signs a one-time \
             invocation of it bound to this connection, and the owner checks the whole chain \
             before sending a byte.",
        );
        self.fetch_verified(3, requester, &named).await?;
        self.report.requests.push(RequestReport {
            step: 3,
            queue_id,
            dataset: named.id_text(),
            title: named.title.clone(),
            owner: self.name(named.owner).to_string(),
            requester: self.name(requester).to_string(),
            purpose: PURPOSE_APPROVED.to_string(),
            first_answer: "pending".into(),
            outcome: "approved".into(),
            reason: None,
        });
        Ok(())
    }

    /// Sends a request for shared-named data, checks it is pending and waits until the owner's
    /// queue holds it. Returns its id in the owner's queue.
    pub(super) async fn ask_named(
        &mut self,
        step: u8,
        requester: usize,
        named: &Dataset,
        purpose: &str,
    ) -> Result<String> {
        // Subscribe before asking, so the owner's "queued" event cannot be missed.
        let mut owner_events = self.agencies[named.owner].node.events();
        let node = self.node(requester);
        let outcome = within(
            self.timeout,
            "for the answer to an access request",
            access::request(&node, named.id, purpose, false),
        )
        .await?
        .context("the access request failed")?;
        let check = format!(
            "{}'s request is pending until the owner decides",
            self.name(requester)
        );
        if outcome.status != "pending" {
            let detail = format!("the owner answered {} {:?}", outcome.status, outcome.reason);
            return Err(self.fail(step, check, detail));
        }
        self.expect(step, check, true, "pending".into());
        self.say.para(2, "The owner's node answers: pending.");

        let deadline = Instant::now() + self.timeout;
        let queued = await_queued(&mut owner_events, &named.id_text(), deadline).await;
        let check = format!("{}'s queue receives the request", self.name(named.owner));
        match queued {
            Some(id) => {
                self.expect(step, check, true, format!("queued as {id}"));
                Ok(id)
            }
            None => Err(self.fail(
                step,
                check,
                format!("no request-queued event within {}", human(self.timeout)),
            )),
        }
    }

    /// Prints the owner's queue as its operator would see it and checks `queue_id` is there,
    /// pending, from the expected requester.
    pub(super) fn show_queue(&mut self, step: u8, owner: usize, queue_id: &str) -> Result<()> {
        let queue = self.agencies[owner].node.shared.store.requests_in()?;
        self.say.para(
            2,
            &format!(
                "{}'s queue, as its operator sees it with `cix requests list`:",
                self.name(owner)
            ),
        );
        let mut found = None;
        for r in &queue {
            let state = match &r.decision {
                Decision::Pending => "pending".to_string(),
                Decision::Approved { .. } => "approved".to_string(),
                Decision::Denied { reason, .. } => format!("denied ({reason})"),
            };
            let title = self.agencies[owner]
                .node
                .shared
                .store
                .latest_entry(&r.dataset)?
                .map(|e| e.entry.title)
                .unwrap_or_else(|| r.dataset.to_string());
            self.say.hanging(
                4,
                6,
                &format!(
                    "{}  {state}  from {}  for \"{title}\"  purpose \"{}\"",
                    r.id,
                    self.agency_of_did(&r.requester.to_string()),
                    r.purpose
                ),
            );
            if r.id == queue_id {
                found = Some(r.decision == Decision::Pending);
            }
        }
        self.expect(
            step,
            format!("{}'s queue shows the request as pending", self.name(owner)),
            found == Some(true),
            format!(
                "request {queue_id}: {}",
                match found {
                    Some(true) => "pending",
                    Some(false) => "already decided",
                    None => "absent",
                }
            ),
        );
        Ok(())
    }

    pub(super) async fn named_denied(&mut self) -> Result<()> {
        self.say.step(4, "Named access denied, with a reason");
        let named = self.dataset(&data::CARSHARE)?;
        let requester = UTILITY;
        self.say.para(
            2,
            &format!(
                "Named access is decided request by request. {} asks for the same car-share \
                 figures, for another purpose:",
                self.name(requester)
            ),
        );
        self.say.para(6, &format!("\"{PURPOSE_DENIED}\""));
        let queue_id = self.ask_named(4, requester, &named, PURPOSE_DENIED).await?;

        let owner = self.node(named.owner);
        let check = "the owner denies the queued request with a reason";
        if let Err(e) = access::deny_request(&owner.shared, &queue_id, DENIAL_REASON) {
            return Err(self.fail(4, check, format!("{e:#}")));
        }
        self.expect(4, check, true, format!("request {queue_id} denied"));
        self.say.para(
            2,
            &format!(
                "{}'s operator denies request {queue_id} (what `cix requests deny {queue_id} \
                 --reason ...` does), saying:",
                self.name(named.owner)
            ),
        );
        self.say.para(6, &format!("\"{DENIAL_REASON}\""));

        self.fetch_refused(
            4,
            "denied",
            requester,
            &named,
            "the denied requester's fetch fails with the owner's reason",
            |m| m.contains(DENIAL_REASON),
        )
        .await?;
        self.say.para(
            2,
            &format!(
                "{}'s fetch fails and says why; nothing is written to its downloads:",
                self.name(requester)
            ),
        );
        self.say_last_refusal();
        self.report.requests.push(RequestReport {
            step: 4,
            queue_id,
            dataset: named.id_text(),
            title: named.title.clone(),
            owner: self.name(named.owner).to_string(),
            requester: self.name(requester).to_string(),
            purpose: PURPOSE_DENIED.to_string(),
            first_answer: "pending".into(),
            outcome: "denied".into(),
            reason: Some(DENIAL_REASON.to_string()),
        });
        Ok(())
    }

    pub(super) async fn closed(&mut self) -> Result<()> {
        self.say.step(5, "Closed data stays home");
        let closed = self.dataset(&data::WATER_NETWORK)?;
        let requester = TRANSPORT;
        self.say.para(
            2,
            &format!(
                "Closed data (ISO 37156 5.5.2) never leaves its owner's node, whatever anyone \
                 asks. Suppose someone at {} learned the id of {}'s network model, {}, outside \
                 cix, and tries to fetch it anyway.",
                self.name(requester),
                self.name(closed.owner),
                closed.id
            ),
        );
        self.fetch_refused(
            5,
            "closed",
            requester,
            &closed,
            "fetching the closed dataset by its id is refused because it is closed",
            |m| m.contains("closed"),
        )
        .await?;
        self.say.para(
            2,
            "Its own catalogue has no such entry, so its node asks the peers it is connected \
             to; the owner's node answers that the dataset is closed:",
        );
        self.say_last_refusal();

        let mut listed_by = Vec::new();
        for (index, agency) in self.agencies.iter().enumerate() {
            if index != closed.owner && agency.node.shared.store.latest_entry(&closed.id)?.is_some()
            {
                listed_by.push(agency.plan.name);
            }
        }
        self.expect(
            5,
            "after the whole tour, still no other agency lists the closed dataset",
            listed_by.is_empty(),
            if listed_by.is_empty() {
                "listed by its owner only".to_string()
            } else {
                format!("listed by {}", listed_by.join(", "))
            },
        );
        Ok(())
    }
}

/// Waits for the owner's node to report a request for `dataset` queued; returns its queue id.
async fn await_queued(
    events: &mut broadcast::Receiver<NodeEvent>,
    dataset: &str,
    deadline: Instant,
) -> Option<String> {
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(NodeEvent::RequestQueued {
                request,
                dataset: d,
            })) if d == dataset => return Some(request),
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) | Err(_) => return None,
        }
    }
}
