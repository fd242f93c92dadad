package client

import (
	"encoding/json"
	"fmt"
	"os"
)

// DefaultConfigPath is where the CLI looks for the admin config when neither
// --config nor SWITCHYARD_CONFIG names one: the file an edge with the default
// data directory writes at first start.
const DefaultConfigPath = "/var/lib/switchyard/admin.json"

// ConfigFile is the name of the admin config inside an edge's data directory.
const ConfigFile = "admin.json"

// Config is the admin config file: where the API is, the admin token, and the
// CA that signed the API's certificate (PEM).
type Config struct {
	API   string `json:"api"`
	Token string `json:"token"`
	CA    string `json:"ca"`
}

// LoadConfig reads an admin config file.
func LoadConfig(path string) (Config, error) {
	var c Config
	buf, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read admin config: %w", err)
	}
	if err := json.Unmarshal(buf, &c); err != nil {
		return c, fmt.Errorf("parse admin config %s: %w", path, err)
	}
	return c, nil
}
