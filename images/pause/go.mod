module tailnet-operator.local/pause

go 1.24
