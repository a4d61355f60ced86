from rewardranker.cli import app

app()
