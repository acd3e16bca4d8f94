# netstat_snapshot.ps1 - live-response script: list the device's TCP connections and their owning processes.
# Args: an optional state filter, e.g. "Established" (default: every state).
param([string]$State = "")
$connections = Get-NetTCPConnection
if ($State) { $connections = $connections | Where-Object { $_.State -eq $State } }
$connections |
    Select-Object LocalAddress, LocalPort, RemoteAddress, RemotePort, State, OwningProcess,
        @{ Name = "Process"; Expression = { (Get-Process -Id $_.OwningProcess -ErrorAction SilentlyContinue).ProcessName } } |
    Format-Table -AutoSize | Out-String -Width 4096
