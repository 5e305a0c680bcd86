"""human_eval: side-by-side rating app (Streamlit), studies, controls and the ratings database."""
