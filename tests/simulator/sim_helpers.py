"""Helpers of the simulator tests: command builders and a small HTTPS client for a running simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator

SCOPE = "https://api.securitycenter.microsoft.com/.default"
TRIAGE_ZIP = "C:\\Windows\\Temp\\triage.zip"


def run_script(name: str, args: str | None = None) -> dict[str, Any]:
    params = [{"key": "ScriptName", "value": name}]
    if args is not None:
        params.append({"key": "Args", "value": args})
    return {"type": "RunScript", "params": params}


def get_file(path: str) -> dict[str, Any]:
    return {"type": "GetFile", "params": [{"key": "Path", "value": path}]}


def put_file(name: str) -> dict[str, Any]:
    return {"type": "PutFile", "params": [{"key": "FileName", "value": name}]}


class SimClient:
    """Plain requests against the simulator, verifying TLS with its CA, with a client-secret token."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.verify = str(sim.ca_file)
        self.session = requests.Session()
        self._token: str | None = None

    def fetch_token(self, tenant: str | None = None, **overrides: str) -> requests.Response:
        data = {
            "grant_type": "client_credentials",
            "client_id": self.sim.client_id,
            "client_secret": self.sim.client_secret,
            "scope": SCOPE,
            **overrides,
        }
        url = f"{self.sim.authority_url}/{tenant or self.sim.tenant_id}/oauth2/v2.0/token"
        return self.session.post(url, data=data, verify=self.verify, timeout=10)

    @property
    def token(self) -> str:
        if self._token is None:
            response = self.fetch_token()
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        explicit = "Authorization" in headers
        if auth:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        url = path if path.startswith("https://") else f"{self.sim.api_url}{path}"
        response = self.session.request(method, url, headers=headers, verify=self.verify, timeout=30, **kwargs)
        if auth and not explicit and response.status_code == 401:
            # Like a real client: fetch a new token once, then retry once.
            self._token = None
            headers["Authorization"] = f"Bearer {self.token}"
            response = self.session.request(method, url, headers=headers, verify=self.verify, timeout=30, **kwargs)
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def control(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.sim.control_url}{path}", verify=self.verify, timeout=30, **kwargs)

    def run(self, machine_id: str, *commands: dict[str, Any], comment: str = "test") -> requests.Response:
        return self.post(
            f"/api/machines/{machine_id}/runliveresponse", json={"Commands": list(commands), "Comment": comment}
        )

    def start(self, machine_id: str, *commands: dict[str, Any]) -> str:
        response = self.run(machine_id, *commands)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def action(self, action_id: str) -> dict[str, Any]:
        response = self.get(f"/api/machineactions/{action_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def link(self, action_id: str, index: int) -> requests.Response:
        return self.get(f"/api/machineactions/{action_id}/GetLiveResponseResultDownloadLink(index={index})")

    def blob(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.get(url, verify=self.verify, timeout=30, **kwargs)
