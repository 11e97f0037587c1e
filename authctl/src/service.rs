//! `authctl service create|list|disable|rotate-secret`: the service clients of AdminService. A
//! secret is printed once (text: on its own line; JSON: `clientSecret`) and never again.

use std::time::Duration;

use auth_api::v1 as pb;
use serde_json::{Value, json};

use crate::{Admin, Failure, cli::ServiceCommand, render};
use render::Rendered;

fn client_json(client: &pb::ServiceClient) -> Value {
    json!({
        "clientId": client.client_id,
        "audiences": client.audiences,
        "exchangeAudiences": client.exchange_audiences,
        "mtlsIdentity": client.mtls_identity,
        "createdAt": render::time_json(client.created_at.as_ref()),
        "disabled": client.disabled,
        "disabledAt": render::time_json(client.disabled_at.as_ref()),
        "previousSecretValidUntil": render::time_json(client.previous_secret_valid_until.as_ref()),
    })
}

fn list_text(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}

fn with_secret(client: Option<pb::ServiceClient>, secret: String, what: &str) -> Rendered {
    let client = client.unwrap_or_default();
    let mut json = client_json(&client);
    json["clientSecret"] = Value::String(secret.clone());
    Rendered {
        text: format!(
            "{what} {}; its client secret (shown only now, store it safely):\n{secret}",
            client.client_id
        ),
        json,
    }
}

impl Admin {
    pub(crate) async fn service(&self, command: ServiceCommand) -> Result<Rendered, Failure> {
        let mut client = self.client.clone();
        match command {
            ServiceCommand::Create {
                name,
                audiences,
                exchange_audiences,
                mtls_identity,
            } => {
                let created = client
                    .create_service_client(self.request(pb::CreateServiceClientRequest {
                        name,
                        audiences,
                        exchange_audiences,
                        mtls_identity: mtls_identity.unwrap_or_default(),
                    }))
                    .await?
                    .into_inner();
                Ok(with_secret(
                    created.client,
                    created.client_secret,
                    "created service client",
                ))
            }
            ServiceCommand::List => {
                let clients = client
                    .list_service_clients(self.request(pb::ListServiceClientsRequest {}))
                    .await?
                    .into_inner()
                    .clients;
                let rows: Vec<Vec<String>> = clients
                    .iter()
                    .map(|c| {
                        vec![
                            c.client_id.clone(),
                            list_text(&c.audiences),
                            list_text(&c.exchange_audiences),
                            if c.mtls_identity.is_empty() {
                                "-".into()
                            } else {
                                c.mtls_identity.clone()
                            },
                            if c.disabled {
                                "disabled".into()
                            } else {
                                "enabled".into()
                            },
                        ]
                    })
                    .collect();
                Ok(Rendered {
                    text: render::table(
                        &[
                            "CLIENT",
                            "AUDIENCES",
                            "EXCHANGE AUDIENCES",
                            "MTLS IDENTITY",
                            "STATUS",
                        ],
                        &rows,
                    ),
                    json: Value::Array(clients.iter().map(client_json).collect()),
                })
            }
            ServiceCommand::Disable { client_id } => {
                let revoked = client
                    .disable_service_client(self.request(pb::DisableServiceClientRequest {
                        client_id: client_id.clone(),
                    }))
                    .await?
                    .into_inner()
                    .revoked_count;
                Ok(Rendered {
                    text: format!(
                        "disabled service client {client_id}; its tokens are refused from now ({revoked} secret generation{} ended)",
                        render::plural(revoked)
                    ),
                    json: json!({ "clientId": client_id, "revokedCount": revoked }),
                })
            }
            ServiceCommand::RotateSecret { client_id, overlap } => {
                let overlap = overlap
                    .filter(|overlap| *overlap > Duration::ZERO)
                    .map(prost_types::Duration::try_from)
                    .transpose()
                    .map_err(|_| Failure::Usage("--overlap is too long".to_owned()))?;
                let rotated = client
                    .rotate_service_client_secret(
                        self.request(pb::RotateServiceClientSecretRequest { client_id, overlap }),
                    )
                    .await?
                    .into_inner();
                Ok(with_secret(
                    rotated.client,
                    rotated.client_secret,
                    "rotated the secret of",
                ))
            }
        }
    }
}
