"""The deployment stage: deployments and their routes, replicas of MLflow scoring servers on worker hosts, canary and shadow traffic, and the route table the serving gateway follows."""
