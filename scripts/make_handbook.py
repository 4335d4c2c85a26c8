#!/usr/bin/env python3
"""Write the example employee handbook: 50 small Markdown pages, one policy each.

Usage: python scripts/make_handbook.py [--out DIR]   (default examples/flows/data/handbook)

The pages are generated from the table below, so the set is deterministic: running the
script again gives byte-identical files (a test checks the committed pages match). The
handbook-qa example searches them with file_search; each fact lives on exactly one page,
so a question has one right page to cite. Every page shares the same opening and closing
lines, as real handbook pages do, so ranking has to find the page by its facts.
"""
from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "examples" / "flows" / "data" / "handbook"
COMPANY = "Northwind Traders"
TEAMS = {"hr": "People team", "it": "IT service desk", "finance": "Finance team",
         "facilities": "Facilities team", "security": "Security team"}

# (department, slug, title, facts)
PAGES: list[tuple[str, str, str, list[str]]] = [
    ("hr", "annual-leave", "Annual leave", [
        "Every employee gets 25 days of paid annual leave per calendar year, plus public holidays.",
        "Up to 5 unused days carry over to the next year; the rest lapse on 31 March.",
        "Book leave in the HR portal at least two weeks ahead for absences longer than three days."]),
    ("hr", "parental-leave", "Parental leave", [
        "Birth parents get 26 weeks of parental leave on full pay; partners get 12 weeks on full pay.",
        "Adoptive parents get the same parental leave as birth parents, from the placement date.",
        "Parental leave can be split into up to three blocks within the child's first two years."]),
    ("hr", "sick-leave", "Sick leave", [
        "Tell your manager before 10:00 on the first day you are ill.",
        "A doctor's note is needed after seven calendar days of sickness absence.",
        "Paid sick leave is unlimited for the first three months of any illness, then half pay."]),
    ("hr", "working-hours", "Working hours", [
        "The standard working week is 37.5 hours, Monday to Friday.",
        "Core hours are 10:00 to 15:00; outside them you choose when you work.",
        "Overtime needs your manager's written approval in advance."]),
    ("hr", "remote-work", "Remote work", [
        "You may work from home up to three days a week once your probation ends.",
        "Working from another country is allowed for up to 20 working days a year, after HR approval.",
        "The company pays a home-office allowance of 300 euros when you start remote work."]),
    ("hr", "probation", "Probation", [
        "New employees are on probation for their first six months.",
        "During probation the notice period on both sides is two weeks.",
        "Your manager holds a probation review in month three and month six."]),
    ("hr", "notice-periods", "Notice periods", [
        "After probation the notice period is one month for individual contributors.",
        "Managers and directors have a notice period of three months.",
        "Resignations must be given in writing to your manager and the People team."]),
    ("hr", "performance-reviews", "Performance reviews", [
        "Performance reviews happen twice a year, in May and November.",
        "Each review rates goals and behaviours on a four-point scale.",
        "Salary changes after a review take effect on 1 January or 1 July."]),
    ("hr", "learning-budget", "Learning budget", [
        "Each employee has a learning budget of 1,500 euros a year for courses, books and conferences.",
        "Unused learning budget does not carry over to the next year.",
        "Two paid study days a year are available for exams."]),
    ("hr", "referral-bonus", "Referral bonus", [
        "Refer a friend who is hired and you receive a referral bonus of 2,000 euros.",
        "The referral bonus is paid after the new hire passes probation.",
        "Referrals for director roles earn a bonus of 4,000 euros."]),
    ("hr", "pension", "Pension plan", [
        "The company pays 6 percent of your salary into the pension plan.",
        "If you add 4 percent yourself, the company raises its share to 8 percent.",
        "You join the pension plan automatically after one month of employment."]),
    ("hr", "health-insurance", "Health insurance", [
        "Private health insurance covers you, your partner and your children at no cost to you.",
        "Dental care is covered up to 800 euros per person per year.",
        "The health insurance provider is Contoso Health; the member number is on your badge."]),
    ("hr", "volunteering", "Volunteering days", [
        "You get two paid volunteering days a year for a registered charity.",
        "Team volunteering events count towards the two volunteering days.",
        "Log volunteering days in the HR portal under special leave."]),
    ("hr", "bereavement", "Bereavement leave", [
        "After the death of a close family member you get ten days of paid bereavement leave.",
        "For other relatives or friends you get two days of bereavement leave.",
        "Bereavement leave does not reduce your annual leave."]),
    ("hr", "jury-service", "Jury service", [
        "Jury service is paid leave; the company pays your full salary during it.",
        "Send your jury summons to the People team as soon as you receive it.",
        "Any allowance the court pays for lost earnings goes to the company."]),
    ("it", "laptops", "Laptops", [
        "Laptops are replaced every three years, or sooner if they fail.",
        "Engineers may choose a 16-inch laptop with 32 GB of memory.",
        "Return your laptop to the IT service desk on your last day."]),
    ("it", "phones", "Mobile phones", [
        "Staff who are on call get a company mobile phone.",
        "Personal phones may read work email only with the device management app installed.",
        "Company phones are replaced every two years."]),
    ("it", "passwords", "Passwords", [
        "Passwords must be at least 14 characters long.",
        "Passwords do not expire, but change yours at once if you think it has leaked.",
        "Use the company password manager; never reuse a work password elsewhere."]),
    ("it", "multi-factor-authentication", "Multi-factor authentication", [
        "Multi-factor authentication is required for every company account.",
        "Use the authenticator app or a hardware key; text-message codes are not allowed.",
        "Lost hardware keys are replaced by the IT service desk within one working day."]),
    ("it", "software-requests", "Software requests", [
        "Request new software through the IT service desk portal.",
        "Approved software is installed within two working days.",
        "Free trials of cloud services also need a software request, because they hold company data."]),
    ("it", "vpn", "VPN", [
        "The VPN is needed only for the finance systems and the build servers.",
        "Connect with the Northwind VPN client, which is installed on every laptop.",
        "The VPN disconnects after 12 hours; connect again to continue."]),
    ("it", "printing", "Printing", [
        "Printers are on every floor; print jobs are released with your badge.",
        "Colour printing is limited to 200 pages a month per person.",
        "Print jobs that are not released are deleted after 24 hours."]),
    ("it", "email", "Email", [
        "Mailboxes hold 100 GB; older mail is archived automatically after two years.",
        "Email to more than 500 external recipients needs the marketing tools, not your mailbox.",
        "Out-of-office replies must not name a colleague's personal phone number."]),
    ("it", "chat", "Chat and video calls", [
        "Use the company chat for day-to-day messages and video calls.",
        "Chat messages are kept for 18 months and then deleted.",
        "External guests can join video calls without an account."]),
    ("it", "backups", "Backups", [
        "Laptops back up automatically to the company cloud every hour.",
        "Deleted files can be restored for 90 days.",
        "Ask the IT service desk to restore anything older than 90 days from tape."]),
    ("it", "accessibility", "Accessibility equipment", [
        "Screen readers, large monitors and ergonomic keyboards are provided on request.",
        "Accessibility equipment is ordered within five working days.",
        "You do not need a medical note to request accessibility equipment."]),
    ("it", "ai-tools", "AI tools", [
        "Only the approved AI assistant may be used with company data.",
        "Never paste customer personal data into an AI tool.",
        "Code written with an AI assistant must be reviewed like any other code."]),
    ("finance", "expenses", "Expense claims", [
        "Submit expense claims within 30 days of spending the money.",
        "Every expense over 25 euros needs a receipt.",
        "Approved expenses are paid with the next monthly salary."]),
    ("finance", "travel-booking", "Travel booking", [
        "Book all business travel through the travel portal.",
        "Flights shorter than six hours are economy class; longer flights may be premium economy.",
        "Trains are preferred over flights for journeys under four hours."]),
    ("finance", "hotels", "Hotels", [
        "Hotel rooms may cost up to 180 euros a night, or 250 euros in London, Paris and New York.",
        "Book hotels through the travel portal so the company can find you in an emergency.",
        "Hotel breakfast is included in the nightly limit."]),
    ("finance", "meals-allowance", "Meals while travelling", [
        "The daily meals allowance while travelling is 60 euros.",
        "Alcohol is not reimbursed, except at approved client dinners.",
        "Client dinners need a list of attendees on the expense claim."]),
    ("finance", "mileage", "Mileage", [
        "Business journeys in your own car are reimbursed at 0.30 euros per kilometre.",
        "Commuting between home and the office is not business mileage.",
        "Record the start and end of each journey in the expense claim."]),
    ("finance", "corporate-card", "Corporate card", [
        "Employees who travel more than four times a year get a corporate credit card.",
        "The corporate card limit is 5,000 euros a month.",
        "Never use the corporate card for personal purchases, even if you pay them back."]),
    ("finance", "purchase-orders", "Purchase orders", [
        "Purchases over 1,000 euros need a purchase order before you commit.",
        "Purchases over 25,000 euros need three quotes.",
        "Purchase orders are approved by your budget holder in the finance system."]),
    ("finance", "payroll", "Payroll", [
        "Salaries are paid on the 25th of each month, or the working day before.",
        "Payslips are in the HR portal from the 23rd.",
        "Report a payroll error to the Finance team within one month."]),
    ("finance", "gifts", "Gifts and hospitality", [
        "You may accept gifts worth up to 50 euros from suppliers.",
        "Register any gift or hospitality over 50 euros in the gifts register.",
        "Never accept cash or vouchers from a supplier."]),
    ("finance", "budgets", "Team budgets", [
        "Team budgets are set in October for the next calendar year.",
        "Budget holders can move up to 10 percent between budget lines without approval.",
        "Unspent budget does not carry over."]),
    ("facilities", "office-hours", "Office opening hours", [
        "Offices are open from 07:00 to 20:00 on working days.",
        "Weekend access needs a request to the Facilities team by Thursday.",
        "The Amsterdam office is closed on King's Day."]),
    ("facilities", "desk-booking", "Desk booking", [
        "Book a desk in the workplace app before you come in.",
        "Desk bookings not checked in by 10:30 are released.",
        "Quiet-zone desks are on the third floor."]),
    ("facilities", "meeting-rooms", "Meeting rooms", [
        "Meeting rooms are booked through your calendar.",
        "Rooms for more than 12 people need Facilities approval.",
        "Leave the room as you found it; catering is cleared by the Facilities team."]),
    ("facilities", "parking", "Parking", [
        "The office has 40 parking spaces, allocated by lottery every quarter.",
        "Electric car chargers are free to use for up to four hours.",
        "Bicycle storage is in the basement and opens with your badge."]),
    ("facilities", "lost-property", "Lost property", [
        "Lost property is kept at reception for 30 days.",
        "Lost badges must be reported to reception at once so they can be blocked.",
        "A replacement badge costs nothing the first time and 20 euros after that."]),
    ("facilities", "kitchens", "Kitchens", [
        "Coffee, tea and fruit are free in every kitchen.",
        "Label food in the fridge with your name and date; fridges are cleared every Friday.",
        "Lunch is catered on Tuesdays and Thursdays."]),
    ("facilities", "visitors", "Visitors", [
        "Register visitors in the workplace app the day before they arrive.",
        "Visitors wear a visitor badge and are accompanied at all times.",
        "Visitors sign the confidentiality notice at reception."]),
    ("facilities", "first-aid", "First aid", [
        "First-aid kits are in every kitchen; defibrillators are next to the lifts.",
        "Trained first-aiders wear a green lanyard.",
        "Report every accident, however small, in the safety log."]),
    ("security", "badges", "Badges", [
        "Wear your badge visibly at all times in the office.",
        "Do not let anyone follow you through a badge door.",
        "Badges stop working after 30 days without use."]),
    ("security", "clean-desk", "Clean desk", [
        "Lock confidential papers away when you leave your desk.",
        "Lock your screen every time you step away, even for a minute.",
        "Confidential papers go in the locked shredding bins, never the recycling."]),
    ("security", "incident-reporting", "Security incidents", [
        "Report a suspected security incident to the Security team within one hour.",
        "The security hotline is extension 4444, open around the clock.",
        "Do not try to investigate a suspected breach yourself."]),
    ("security", "phishing", "Phishing", [
        "Report suspicious email with the report-phishing button in your mail client.",
        "The Security team runs a phishing test every quarter.",
        "Never enter your password on a page you reached from an email link."]),
    ("security", "data-classification", "Data classification", [
        "Company data is public, internal, confidential or restricted.",
        "Restricted data, such as salaries and health records, is encrypted everywhere.",
        "Label documents with their classification in the header."]),
]


def page(dept: str, title: str, facts: list[str], number: int) -> str:
    team = TEAMS[dept]
    body = " ".join(facts)
    return (f"# {title}\n\n"
            f"This page is part of the {COMPANY} employee handbook. It applies to every employee "
            f"unless your contract says otherwise.\n\n"
            f"{body}\n\n"
            f"Questions about this policy go to the {team}.\n\n"
            f"Page {number} of {len(PAGES)}. Last reviewed: 2026-{(number % 12) + 1:02d}-01.\n")


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (dept, slug, title, facts) in enumerate(PAGES, 1):
        path = out / f"{dept}-{slug}.md"
        path.write_text(page(dept, title, facts, number), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    paths = write(Path(args.out))
    print(f"wrote {len(paths)} pages to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
