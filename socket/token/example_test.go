package token_test

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/phxgo/phx/socket/token"
)

func Example() {
	// A fixed clock makes the output reproducible; servers leave the
	// default, time.Now.
	signedAt := time.UnixMilli(1_700_000_000_000)
	now := signedAt
	clock := token.WithNow(func() time.Time { return now })

	// The Phoenix app's secret_key_base and the salt it passes to
	// Phoenix.Token.sign(conn, "user socket", user_id).
	signer, err := token.NewSigner(strings.Repeat("abcdefghij", 7), "user socket", clock)
	if err != nil {
		panic(err)
	}

	// What Phoenix.Token.sign/3 would render into the page.
	tok, err := signer.Sign("user-42")
	if err != nil {
		panic(err)
	}
	fmt.Println(tok)

	// What an Authenticator does with the token the client sends back.
	userID, err := token.VerifyAs[string](signer, tok)
	fmt.Println(userID, err)

	// A day and a millisecond later, the default max age has passed.
	now = signedAt.Add(24*time.Hour + time.Millisecond)
	_, err = signer.Verify(tok)
	fmt.Println(errors.Is(err, token.ErrExpired))

	// Output:
	// SFMyNTY.g2gDbQAAAAd1c2VyLTQybgYAAGjlz4sBYgABUYA.vztYnec9znzhqAIrJLPVp6xsklj8GiNZM14WfW0no6I
	// user-42 <nil>
	// true
}

func ExampleSigner_Verify() {
	signer, err := token.NewSigner(strings.Repeat("abcdefghij", 7), "user socket")
	if err != nil {
		panic(err)
	}
	// Minted by Phoenix.Token.sign(endpoint, "user socket", %{"id" => 7}) in
	// November 2023: long expired, unless the caller waives the age check.
	tok := "SFMyNTY.g2gDdAAAAAFtAAAAAmlkYQduBgAAaOXPiwFiAAFRgA.qnk8RkvYmAYt2kmeO2-kckrT2TJ8vTH2NTc6-1EIioI"

	_, err = signer.Verify(tok)
	fmt.Println(errors.Is(err, token.ErrExpired))

	data, err := signer.Verify(tok, token.WithMaxAge(token.Infinity))
	fmt.Println(data, err)
	fmt.Println(data.(map[string]any)["id"].(int64))

	_, err = signer.Verify("")
	fmt.Println(errors.Is(err, token.ErrMissing))
	// Output:
	// true
	// map[id:7] <nil>
	// 7
	// true
}
