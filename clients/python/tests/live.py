"""Calls to the real auth-service that the live tests make: a fresh user, its logins, logouts."""

from __future__ import annotations

import uuid

import grpc

from auth_verifier._proto import auth_pb2, auth_pb2_grpc

from .conftest import load

SCENARIO = load("scenario.json")


class Account:
    def __init__(self, addr: str):
        self.channel = grpc.insecure_channel(addr)
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.email = f"py-{uuid.uuid4().hex}@example.com"
        self.auth.Register(auth_pb2.RegisterRequest(email=self.email, password=SCENARIO["password"]), timeout=10)

    def login(self) -> str:
        response = self.auth.Login(
            auth_pb2.LoginRequest(email=self.email, password=SCENARIO["password"], kind=auth_pb2.CREDENTIAL_KIND_TOKENS),
            timeout=10,
        )
        return response.tokens.access_token

    def logout(self, token: str) -> None:
        self.auth.Logout(auth_pb2.LogoutRequest(token=token), timeout=10)

    def close(self) -> None:
        self.channel.close()
