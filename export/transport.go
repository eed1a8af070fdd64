package export

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// credentials are what a target sends with every request. They are read
// once, at start, from the files the target names; errors name the file,
// never its content.
type credentials struct {
	authorization string // the Authorization header, or ""
	tenant        string // X-Scope-OrgID, or ""
}

func (t Target) credentials() (credentials, error) {
	c := credentials{tenant: t.Tenant}
	switch {
	case t.TokenFile != "":
		token, err := readSecret(t.TokenFile)
		if err != nil {
			return c, fmt.Errorf("token-file: %w", err)
		}
		c.authorization = "Bearer " + token
	case t.BasicAuthFile != "":
		pair, err := readSecret(t.BasicAuthFile)
		if err != nil {
			return c, fmt.Errorf("basic-auth-file: %w", err)
		}
		if !strings.Contains(pair, ":") {
			return c, fmt.Errorf("basic-auth-file %s: want user:password on one line", t.BasicAuthFile)
		}
		c.authorization = "Basic " + base64.StdEncoding.EncodeToString([]byte(pair))
	}
	return c, nil
}

// headers returns the request headers the credentials make.
func (c credentials) headers() map[string]string {
	h := map[string]string{}
	if c.authorization != "" {
		h["Authorization"] = c.authorization
	}
	if c.tenant != "" {
		h["X-Scope-OrgID"] = c.tenant
	}
	return h
}

func readSecret(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(raw))
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s: want one non-empty line", path)
	}
	return s, nil
}

// tlsConfig trusts the target's CA file if it names one, else the system's
// roots.
func (t Target) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca-file %s: %w", t.CAFile, errors.New("no PEM certificate in it"))
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// Check reads the files a target names, so that a wrong path is refused at
// start as a mistake in the settings.
func (t Target) Check() error {
	if _, err := t.credentials(); err != nil {
		return err
	}
	_, err := t.tlsConfig()
	return err
}
