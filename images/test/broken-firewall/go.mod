module tailnet-operator.local/broken-firewall

go 1.24
