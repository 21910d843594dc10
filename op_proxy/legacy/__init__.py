"""The old PHP gateway's front doors, for apps that must keep working unchanged: the query-token
mode (``redirect_uri?token=<HS256 JWT>``) and the PHP session mode (op-proxy writes the session the
app already reads)."""
