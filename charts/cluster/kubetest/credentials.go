package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// credentials are the secrets of one control plane, made anew for each run.
type credentials struct {
	token        string // the administrator's bearer token (group system:masters)
	tokenFile    string // kube-apiserver's --token-auth-file
	saPrivateKey string // signs ServiceAccount tokens (PEM, PKCS #8)
	saPublicKey  string // verifies them (PEM, PKIX)
}

// newCredentials writes a random administrator token and a ServiceAccount
// signing key pair into dir.
func newCredentials(dir string) (credentials, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return credentials{}, fmt.Errorf("token: %w", err)
	}
	c := credentials{
		token:        hex.EncodeToString(raw),
		tokenFile:    filepath.Join(dir, "tokens.csv"),
		saPrivateKey: filepath.Join(dir, "sa.key"),
		saPublicKey:  filepath.Join(dir, "sa.pub"),
	}
	// token,user,uid,"groups"
	line := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", c.token)
	if err := os.WriteFile(c.tokenFile, []byte(line), 0o600); err != nil {
		return credentials{}, fmt.Errorf("token file: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return credentials{}, fmt.Errorf("service account key: %w", err)
	}
	private, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return credentials{}, fmt.Errorf("service account key: %w", err)
	}
	public, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return credentials{}, fmt.Errorf("service account key: %w", err)
	}
	if err := writePEM(c.saPrivateKey, "PRIVATE KEY", private); err != nil {
		return credentials{}, err
	}
	if err := writePEM(c.saPublicKey, "PUBLIC KEY", public); err != nil {
		return credentials{}, err
	}
	return c, nil
}

// writePEM writes one PEM block to path, readable by its owner only.
func writePEM(path, blockType string, der []byte) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
