"""asgi_sso: enterprise single sign-on for any ASGI app."""
