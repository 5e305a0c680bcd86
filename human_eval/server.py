"""The rating server as `imagen-bench rate` starts it: `streamlit run human_eval/server.py` finds
`app` (an st.App: Streamlit's own server for human_eval/app.py) with the WebGuard middleware in
front (human_eval/web_guard.py: no metrics or upload endpoints, security headers)."""

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from human_eval.web_guard import WebGuard

app = st.App(Path(__file__).with_name("app.py"), middleware=[Middleware(WebGuard)])
